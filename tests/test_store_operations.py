"""The store contract's operations, on every backend (``store`` fixture): what the server
relies on each one doing, group by group, said through ``Store`` alone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from llmtap.server.ingest import prepare
from llmtap.store import EventFilter, KeyInfo, NameTaken, Store, decode_cursor
from llmtap.wire import Event, make_event, template_revision

from .test_derive import rows

NOW = 1_800_000_000_000_000  # microseconds; the store takes every time from its caller
HOUR = 3_600_000_000


def project(store: Store, name: str = "p") -> KeyInfo:
    return KeyInfo(1, store.ensure_project(name), name, "dev")


# -- events --------------------------------------------------------------------------------


def test_events_are_stored_once_and_read_back_with_their_feedback(store: Store) -> None:
    key = project(store)
    other = project(store, "other")
    batch = rows(3, key, feedback_key="fk")
    assert store.insert_events(batch) == 3
    assert store.insert_events(batch) == 0  # idempotent by id
    first = batch[0][0]
    assert store.insert_feedback(key.project_id, "fk", 0.5, "better", "f1")
    assert not store.insert_feedback(key.project_id, "fk", 0.9, None, "f1")  # same feedback id
    event = store.get_event(key.project_id, first)
    assert event is not None and event["id"] == first
    assert [(f["rating"], f["better_response"]) for f in event["feedback"]] == [(0.5, "better")]
    assert store.get_event(other.project_id, first) is None  # another project's
    assert store.get_event(key.project_id, str(uuid.uuid4())) is None


def test_an_id_twice_in_one_batch_keeps_its_first_copy_everywhere(store: Store) -> None:
    """Two different events under one id in a batch (a buggy or hostile sender): the first
    is stored, and its attributes and words are the ones the filters, search and stats see."""
    from llmtap.store._common import EVENT_COLUMNS, EventRow

    key = project(store)
    first, second = rows(2, key)
    same = EVENT_COLUMNS.index("id")
    facts = second.facts
    second = EventRow(first[same] if j == same else v for j, v in enumerate(second))
    second.facts = facts  # as ingest's rows carry them
    assert first[EVENT_COLUMNS.index("body")] != second[EVENT_COLUMNS.index("body")]
    assert store.insert_events([first, second]) == 1
    pid = key.project_id
    event = store.get_event(pid, first[same])
    assert event is not None and event["attributes"] == {"user": "u0"}

    def ids(**f: Any) -> list[str]:
        return [e["id"] for e in store.list_events(pid, EventFilter(**f))[0]]

    assert ids(attributes={"user": "u0"}) == [first[same]]
    assert ids(attributes={"user": "u1"}) == []
    assert ids(q="question 0") == [first[same]]
    assert ids(q="question 1") == []
    groups = store.stats(pid, EventFilter(), ["attributes.user"])["groups"]
    assert [(g["key"]["attributes.user"], g["count"]) for g in groups] == [("u0", 1)]


def test_events_of_one_instant_are_listed_in_the_order_they_were_sent(store: Store) -> None:
    """A chat's turns sent together at one instant read back in their batch's order (the
    newest, the last sent, first), on both backends: PostgreSQL's had followed their ids."""
    key = project(store)
    batch = rows(20, key)  # one started_at, random ids
    assert store.insert_events(batch) == 20
    listed = [e["id"] for e in store.list_events(key.project_id, EventFilter(limit=50))[0]]
    assert listed == [row[0] for row in reversed(batch)]


def test_feedback_on_no_event_goes_with_a_purge_past_it_or_a_delete_of_everything(
    store: Store,
) -> None:
    """Feedback that no stored event carries the key of (sent after its event was deleted,
    or for a call never sent) had stayed for ever, where no delete reached it."""
    key = project(store)
    pid = key.project_id
    rated = rows(1, key, feedback_key="kept")
    store.insert_events(rated)
    for feedback_key in ("kept", "orphan"):
        assert store.insert_feedback(pid, feedback_key, 0.5, "a user's words", None)

    def keys() -> list[str]:
        return sorted(f["feedback_key"] for f in store.list_feedback(pid))

    assert store.purge_before(pid, 0) == 0  # given after the cutoff: its event may yet come
    assert keys() == ["kept", "orphan"]
    assert store.delete_events(pid, EventFilter(chat_id="another")) == 0
    assert keys() == ["kept", "orphan"]  # a delete of some events leaves it
    assert store.purge_before(pid, NOW) == 1  # the event (of 2026) and the orphan, before it
    assert keys() == []
    store.insert_events(rows(1, key, feedback_key="again"))
    for feedback_key in ("again", "orphan"):
        store.insert_feedback(pid, feedback_key, 1.0, None, None)
    assert store.delete_events(pid) == 1
    assert keys() == []


def test_a_template_lists_its_newest_revisions_and_finds_an_older_one_by_id(
    store: Store,
) -> None:
    """One name can hold a revision per call (a plain call given a name): a template lists
    its 100 newest and says how many more; an older one is found by its id or its start."""
    key = project(store)
    batch = []
    for i in range(105):
        event = Event.model_validate(
            make_event(
                id=str(uuid.uuid4()),
                api="completion",
                status="ok",
                started_at=f"2026-05-01T12:{i // 60:02d}:{i % 60:02d}+00:00",
                prompt_template_name="t",
                template_text=f"version {i}: {{q}}",
                template_params={"q": "x"},
            )
        )
        batch.append(prepare(event, key, 0, None))
    store.insert_events(batch)
    (listed,) = store.templates(key.project_id, "t")
    assert [r["template"] for r in listed["revisions"][:2]] == [
        "version 104: {q}",
        "version 103: {q}",
    ]
    assert len(listed["revisions"]) == 100 and listed["revisions_left_out"] == 5
    assert listed["count"] == 105 and listed["last_seen"].startswith("2026-05-01T12:01:44")
    oldest = template_revision("version 0: {q}")
    assert oldest is not None
    (found,) = store.templates(key.project_id, revision=oldest[:6])
    assert [r["template"] for r in found["revisions"]] == ["version 0: {q}"]
    assert found["revisions"][0]["count"] == 1
    assert store.templates(key.project_id, revision="ffffffffffff0") == []


def test_pages_follow_their_cursor_to_every_event_once(store: Store) -> None:
    key = project(store)
    store.insert_events(rows(7, key))
    seen: list[str] = []
    f = EventFilter(limit=3)
    while True:
        page, cursor = store.list_events(key.project_id, f)
        seen += [e["id"] for e in page]
        if cursor is None:
            break
        f.cursor = decode_cursor(cursor)
    assert len(seen) == len(set(seen)) == 7
    assert [e["id"] for e in store.iter_events(key.project_id, EventFilter())] == seen
    summary, _ = store.list_events(key.project_id, EventFilter(limit=1), summary=True)
    assert summary[0]["summary"] is True and "request" not in summary[0]


# -- projects and keys ----------------------------------------------------------------------


def test_keys_are_found_by_hash_rescoped_and_revoked_within_their_project(store: Store) -> None:
    key_id = store.create_key("alpha", "prod", "hash-a", "lt_aaaa", ("ingest", "read"), True)
    pid = store.project_id("alpha")
    assert pid is not None and store.ensure_project("alpha") == pid
    assert store.project_id("nowhere") is None
    found = store.key_by_hash("hash-a")
    assert found == KeyInfo(key_id, pid, "alpha", "prod", frozenset({"ingest", "read"}), True)
    assert store.key_by_hash("hash-b") is None
    other = store.ensure_project("beta")
    assert not store.set_key_scopes(other, key_id, ["admin"], False)  # not beta's key
    assert store.set_key_scopes(pid, key_id, ["admin"], False)
    assert store.key_by_hash("hash-a") == KeyInfo(
        key_id, pid, "alpha", "prod", frozenset({"admin"}), False
    )
    (listed,) = store.list_keys(pid)
    assert (listed["id"], listed["prefix"], listed["scopes"]) == (key_id, "lt_aaaa", ["admin"])
    assert "hash-a" not in str(listed)
    projects = {p["name"]: p for p in store.list_projects()}
    assert projects["alpha"]["environments"] == ["prod"] and projects["alpha"]["active_keys"] == 1
    assert not store.revoke_key(other, key_id)
    assert store.revoke_key(pid, key_id)
    assert not store.revoke_key(pid, key_id)  # once
    assert store.key_by_hash("hash-a") is None
    assert not store.set_key_scopes(pid, key_id, ["read"], False)  # a revoked key stays so
    assert store.list_keys(pid)[0]["revoked_at"] is not None


# -- users, sessions, invitations, failed logins --------------------------------------------


def test_the_first_user_is_made_once_and_names_are_unique_without_case(store: Store) -> None:
    assert store.count_users() == 0
    owner = store.create_user("Ada", "h1", True, only_if_first=True)
    assert owner is not None
    assert store.create_user("Bob", "h2", True, only_if_first=True) is None
    assert store.count_users() == 1
    with pytest.raises(NameTaken):
        store.create_user("ada", "h3")
    found = store.user_by_name("ADA")
    assert found == {"id": owner, "name": "Ada", "password_hash": "h1", "is_owner": True}
    assert store.user_by_name("nobody") is None


def test_members_have_roles_that_change_and_go(store: Store) -> None:
    alpha, beta = store.ensure_project("alpha"), store.ensure_project("beta")
    uid = store.create_user("cy", "h", project_id=alpha, role="viewer")
    assert uid is not None
    (listed,) = store.list_users(alpha)
    assert listed["roles"] == {"alpha": "viewer"} and not listed["is_owner"]
    assert store.list_users(beta) == []
    assert store.set_role(uid, alpha, "admin")
    assert not store.set_role(uid, beta, "admin")  # not a member there
    assert store.list_users()[0]["roles"] == {"alpha": "admin"}
    assert store.remove_member(uid, alpha)
    assert not store.remove_member(uid, alpha)
    assert store.list_users()[0]["roles"] == {}
    assert store.delete_user(uid)
    assert not store.delete_user(uid)
    assert store.count_users() == 0


def test_sessions_live_until_revoked_expired_or_a_new_password(store: Store) -> None:
    alpha = store.ensure_project("alpha")
    uid = store.create_user("di", "h", project_id=alpha, role="member")
    owner = store.create_user("ed", "h", is_owner=True)
    assert uid is not None and owner is not None
    store.create_session(uid, "s1", "csrf1", NOW, NOW + HOUR)
    store.create_session(uid, "s2", "csrf2", NOW, NOW + HOUR)
    store.create_session(owner, "s3", "csrf3", NOW, NOW + HOUR)
    assert store.session_user("s1", NOW) == {
        "id": uid,
        "name": "di",
        "is_owner": False,
        "csrf": "csrf1",
        "roles": {"alpha": (alpha, "member")},
    }
    beta = store.ensure_project("beta")
    owner_session = store.session_user("s3", NOW)
    assert owner_session is not None
    assert owner_session["roles"] == {"alpha": (alpha, "admin"), "beta": (beta, "admin")}
    assert store.session_user("s1", NOW + HOUR) is None  # expired
    assert store.session_user("nope", NOW) is None
    store.set_password(uid, "h-new", NOW, keep="s2")
    assert store.session_user("s1", NOW) is None
    assert store.session_user("s2", NOW) is not None
    store.revoke_session("s2", NOW)
    assert store.session_user("s2", NOW) is None
    found = store.user_by_name("di")
    assert found is not None and found["password_hash"] == "h-new"


def test_an_invitation_is_used_once_before_it_expires(store: Store) -> None:
    alpha = store.ensure_project("alpha")
    owner = store.create_user("owner", "h", is_owner=True)
    member = store.create_user("fay", "h", project_id=alpha, role="admin")
    assert owner is not None and member is not None
    store.create_invitation("t-new", alpha, "viewer", "g@example.com", owner, NOW + HOUR)
    store.create_invitation("t-old", alpha, "member", None, owner, NOW + HOUR)
    store.create_invitation("t-late", alpha, "member", None, owner, NOW - 1)
    assert store.invitation("t-new", NOW) == {
        "project": "alpha",
        "role": "viewer",
        "email": "g@example.com",
    }
    assert store.invitation("t-late", NOW) is None
    with pytest.raises(NameTaken):
        store.accept_invitation("t-new", NOW, new_user=("FAY", "h"))
    assert store.invitation("t-new", NOW) is not None  # a refused link stays usable
    made = store.accept_invitation("t-new", NOW, new_user=("gus", "h"))
    assert made is not None and store.user_by_name("gus") is not None
    assert store.accept_invitation("t-new", NOW, new_user=("hal", "h")) is None  # used
    assert store.user_by_name("hal") is None  # and it made no account
    assert store.accept_invitation("t-late", NOW, user_id=member) is None
    assert store.accept_invitation("t-old", NOW, user_id=member) == member
    roles = {u["name"]: u["roles"] for u in store.list_users(alpha)}
    assert roles == {"fay": {"alpha": "admin"}, "gus": {"alpha": "viewer"}}  # never demoted
    # A member given a link to a higher role gets it (a viewer had stayed a viewer).
    store.create_invitation("t-up", alpha, "member", None, owner, NOW + HOUR)
    assert store.accept_invitation("t-up", NOW, user_id=made) == made
    assert {u["name"]: u["roles"] for u in store.list_users(alpha)}["gus"] == {"alpha": "member"}


def test_failed_logins_are_counted_by_name_and_client_and_cleared(store: Store) -> None:
    window = 60_000_000
    store.record_failure("10.0.0.1", "Ida", NOW - 2 * window, window)
    store.record_failure("10.0.0.1", "ida", NOW, window)  # drops the one past the window
    store.record_failure("10.0.0.2", "IDA", NOW + 1, window)
    store.record_failure("10.0.0.1", "jo", NOW + 2, window)
    assert store.count_failures("10.0.0.1", "ida", NOW - 3 * window) == (2, 2, NOW, NOW)
    assert store.count_failures("10.0.0.3", "jo", NOW + 1) == (1, 0, NOW + 2, None)
    store.clear_failures("IDA")
    assert store.count_failures("10.0.0.1", "ida", 0) == (0, 1, None, NOW + 2)
    # Under limits, noted only while both counts are under them.
    limits = (2, 3)
    noted = [store.record_failure("10.0.0.1", "kim", NOW + 3 + i, window, limits) for i in range(3)]
    assert noted == [True, True, False]  # kim's two
    assert store.record_failure("10.0.0.1", "lu", NOW + 9, window, limits) is False  # 3 from .1
    assert store.record_failure("10.0.0.4", "lu", NOW + 9, window, limits) is True
    assert store.count_failures("10.0.0.1", "kim", NOW) == (2, 3, NOW + 3, NOW + 2)


# -- feedback, meta values, prices, deletes -------------------------------------------------


def test_feedback_lists_newest_first_with_its_event_and_pages(store: Store) -> None:
    key = project(store)
    store.insert_events(rows(1, key, feedback_key="known"))
    store.insert_feedback(key.project_id, "known", 1.0, None)
    store.insert_feedback(key.project_id, "early", 0.0, "later")  # its event not here yet
    newest, older = store.list_feedback(key.project_id)
    assert (newest["feedback_key"], newest["event"]) == ("early", None)
    assert older["event"] is not None and older["event"]["feedback_key"] == "known"
    assert store.list_feedback(key.project_id, 1, before_id=newest["id"]) == [older]
    assert store.list_feedback(store.ensure_project("other")) == []
    # Many events sharing one key (a key's sender chooses them): the feedback is listed once,
    # with the first of them, and the others' feedback is not pushed off the page.
    store.insert_events(rows(30, key, feedback_key="shared"))
    store.insert_feedback(key.project_id, "shared", 0.5, None)
    listed = store.list_feedback(key.project_id, 3)
    assert [f["feedback_key"] for f in listed] == ["shared", "early", "known"]


def test_meta_values_are_set_and_replaced(store: Store) -> None:
    assert store.get_meta("k") is None
    store.set_meta("k", "one")
    store.set_meta("k", "two")
    assert store.get_meta("k") == "two"


def test_a_price_override_reprices_its_model_and_goes(store: Store) -> None:
    key = project(store)
    store.insert_events(rows(4, key))  # gpt-4o-mini, usage and no price
    assert store.unpriced_models(key.project_id) == [{"model": "gpt-4o-mini", "events": 4}]
    prices: dict[str, float | None] = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}

    def cost_of(overrides: list[dict[str, Any]]) -> Any:
        return lambda body: 0.25 if overrides else None

    assert store.set_price_override(key.project_id, "gpt-4o-mini", 0, prices, cost_of) == 4
    (override,) = store.price_overrides(key.project_id)
    assert (override["model"], override["input_per_mtok"]) == ("gpt-4o-mini", 1.0)
    assert store.price_overrides(key.project_id, "other-model") == []
    assert store.unpriced_models(key.project_id) == []
    group = store.stats(key.project_id, EventFilter(), [])["groups"][0]
    assert group["cost_usd"] == pytest.approx(1.0)
    assert store.set_price_override(key.project_id, "gpt-4o-mini", 0, None, cost_of) == 4
    assert store.price_overrides(key.project_id) == []


def test_deleted_events_leave_the_list_and_the_stats(store: Store) -> None:
    key = project(store)
    batch = rows(6, key)
    store.insert_events(batch)
    gone = [batch[0][0], batch[1][0]]
    assert store.delete_events(key.project_id, ids=gone) == 2
    assert store.get_event(key.project_id, gone[0]) is None
    assert store.stats(key.project_id, EventFilter(), [])["groups"][0]["count"] == 4
    assert store.delete_events(key.project_id, EventFilter(attributes={"user": "u0"})) == 2
    assert store.delete_events(key.project_id) == 2
    assert store.list_events(key.project_id, EventFilter())[0] == []
