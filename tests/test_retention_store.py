"""Retention in the store, on every backend: events older than a cut-off are purged in chunks,
with their feedback and index rows; the stats stay (or go with them) as asked."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from llmtap.server.ingest import prepare
from llmtap.store import EventFilter, KeyInfo, Store
from llmtap.store._delete import CHUNK
from llmtap.wire import Event, make_event

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
DAY_US = 86_400_000_000


def dated(key: KeyInfo, days: list[int], word: str = "zebra") -> list[tuple[Any, ...]]:
    """One event per entry of ``days``, started that many days after ``T0``, each with a
    feedback key of its own, an attribute and a word to search."""
    out = []
    for i, day in enumerate(days):
        event = Event.model_validate(
            make_event(
                id=str(uuid.uuid4()),
                api="chat",
                provider="openai",
                model="gpt-4o-mini",
                request={"messages": [{"role": "user", "content": f"{word} question {i}"}]},
                output_text="an answer",
                status="ok",
                started_at=(T0 + timedelta(days=day, seconds=i)).isoformat(),
                latency_ms=100.0,
                usage={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
                feedback_key=f"fk-{day}-{i}",
                attributes={"user": f"u{i % 2}"},
                prompt_template_name="greet",
                template_text="hello {name}",
                template_params={"name": "x"},
            )
        )
        out.append(prepare(event, key, 0, None))
    return out


def cut(days: int) -> int:
    return int((T0 + timedelta(days=days)).timestamp() * 1_000_000)


def count(store: Store, pid: int, **filters: Any) -> int:
    groups = store.stats(pid, EventFilter(**filters), [])["groups"]
    return int(groups[0]["count"]) if groups else 0


def listed(store: Store, pid: int, **filters: Any) -> int:
    return len(store.list_events(pid, EventFilter(limit=1000, **filters))[0])


@pytest.mark.parametrize("keep", [True, False])
def test_old_events_are_purged_and_the_stats_stay_only_when_kept(store: Store, keep: bool) -> None:
    pid = store.ensure_project("p")
    key = KeyInfo(1, pid, "p", "dev")
    other = KeyInfo(2, store.ensure_project("other"), "other", "dev")
    store.insert_events(dated(key, [0, 1, 2, 10, 11]))
    store.insert_events(dated(other, [0, 1]))
    store.insert_feedback(pid, "fk-0-0", 0.5, "better", None)
    store.insert_feedback(pid, "fk-10-3", 1.0, None, None)
    assert store.oldest_event_us(pid) == cut(0)

    assert store.purge_before(pid, cut(5), keep_aggregates=keep) == 3
    assert listed(store, pid) == 2
    assert store.oldest_event_us(pid) == cut(10) + 3_000_000
    # The text and attribute indexes hold only what is left.
    assert listed(store, pid, q="zebra") == 2
    assert listed(store, pid, attributes={"user": "u0"}) == 1
    assert [f["feedback_key"] for f in store.list_feedback(pid, 10)] == ["fk-10-3"]
    assert count(store, pid) == (5 if keep else 2)
    assert count(store, pid, from_us=cut(10)) == 2
    assert (store.templates(pid) != []) is True
    # Another project is not touched, and a second purge finds nothing.
    assert listed(store, other.project_id) == 2
    assert store.purge_before(pid, cut(5), keep_aggregates=keep) == 0


def test_a_purge_goes_in_chunks_through_every_old_event(store: Store) -> None:
    pid = store.ensure_project("p")
    key = KeyInfo(1, pid, "p", "dev")
    store.insert_events(dated(key, [0] * (CHUNK + 7) + [9]))
    assert store.purge_before(pid, cut(5), keep_aggregates=False) == CHUNK + 7
    assert count(store, pid) == 1 and listed(store, pid) == 1


def test_a_project_has_its_own_retention_or_the_servers(store: Store) -> None:
    pid = store.ensure_project("p")
    assert store.retention_days(pid) is None
    store.set_retention_days(pid, 30)
    assert store.retention_days(pid) == 30
    store.set_retention_days(pid, 0)
    assert store.retention_days(pid) == 0
    store.set_retention_days(pid, None)
    assert store.retention_days(pid) is None
    with pytest.raises(ValueError):
        store.set_retention_days(pid, -1)
    assert store.oldest_event_us(pid) is None


def test_deleting_a_users_events_after_a_purge_takes_them_out_of_the_kept_stats(
    store: Store,
) -> None:
    pid = store.ensure_project("p")
    key = KeyInfo(1, pid, "p", "dev")
    store.insert_events(dated(key, [0, 1, 10, 11]))  # u0 on days 0 and 10, u1 on 1 and 11
    assert store.purge_before(pid, cut(5), keep_aggregates=True) == 2

    def by_user() -> dict[str, int]:
        groups = store.stats(pid, EventFilter(), ["attributes.user"])["groups"]
        return {g["key"]["attributes.user"]: g["count"] for g in groups}

    assert by_user() == {"u0": 2, "u1": 2}  # the purged ones still counted, as kept
    assert store.delete_events(pid, EventFilter(attributes={"user": "u0"})) == 1
    assert by_user() == {"u1": 2}  # u0 no longer named anywhere in the stats
    assert count(store, pid) == 3  # the total keeps the purged one, as after any purge
    # A new event of u0 counts afresh.
    store.insert_events(dated(key, [12])[:1])
    assert by_user() == {"u0": 1, "u1": 2}


def test_a_plain_call_s_prompt_under_a_name_it_was_given_goes_once_no_call_of_it_is_kept(
    store: Store,
) -> None:
    """A call made without a template is filed under its own prompt, also when it was given a
    name (a default name in the config): retention blanked only unnamed ones, and kept
    "my SSN is ..." under the name. A real template's text stays: it is no call's words."""
    pid = store.ensure_project("p")
    key = KeyInfo(1, pid, "p", "dev")
    secret = "my SSN is 078-05-1120"
    plain = make_event(
        id=str(uuid.uuid4()),
        api="chat",
        status="ok",
        started_at=T0.isoformat(),
        prompt_template_name="default",
        request={"messages": [{"role": "user", "content": secret}]},
    )
    templated = dated(key, [0])  # "greet": template_text "hello {name}"
    store.insert_events([prepare(Event.model_validate(plain), key, 0, None), *templated])
    assert store.purge_before(pid, cut(1)) == 2
    store.forget_unused_prompts(pid)
    texts = {t["name"]: [r["template"] for r in t["revisions"]] for t in store.templates(pid)}
    assert texts == {"default": [[]], "greet": ["hello {name}"]}
