"""Boards in the store (every backend): versions on every save, a project sees only its own
boards and links, a link works until it is revoked or expires."""

from __future__ import annotations

from llmtap.store import Store

SPEC = {"panels": [{"title": "<b>requests</b>"}]}


def test_a_board_keeps_a_version_per_save_and_stays_in_its_project(store: Store) -> None:
    a, b = store.ensure_project("a"), store.ensure_project("b")
    assert store.create_board(a, "x1", "Mine", SPEC, "ann")
    assert not store.create_board(a, "x1", "Again", SPEC, "ann")  # the id is taken
    assert store.update_board(a, "x1", "Mine, renamed", {"panels": []}, True, "bob") == 2
    assert store.update_board(b, "x1", "theirs", {"panels": []}, False, "eve") is None
    found = store.board(a, "x1")
    assert found is not None
    assert (found["name"], found["version"], found["is_template"]) == ("Mine, renamed", 2, True)
    assert found["spec"] == {"panels": []}
    assert store.board(b, "x1") is None
    assert [v["version"] for v in store.board_versions(a, "x1")] == [2, 1]
    first = store.board_version(a, "x1", 1)
    assert first is not None
    assert (first["name"], first["spec"], first["saved_by"]) == ("Mine", SPEC, "ann")
    assert store.board_versions(b, "x1") == []
    assert [t["project"] for t in store.list_board_templates()] == ["a"]
    assert [x["id"] for x in store.list_boards(a)] == ["x1"]
    assert store.list_boards(b) == []
    assert not store.delete_board(b, "x1")
    assert store.delete_board(a, "x1")
    assert store.board(a, "x1") is None
    assert store.board_versions(a, "x1") == []


def test_a_share_link_works_until_revoked_or_expired(store: Store) -> None:
    a, b = store.ensure_project("a"), store.ensure_project("b")
    store.create_board(a, "x1", "Mine", SPEC, "ann")
    store.create_share(a, "s1", "x1", "hash-1", "ann", None, False)
    store.create_share(a, "s2", "x1", "hash-2", "ann", 1_000, True)
    live = store.share_by_hash("hash-1", 2_000)
    assert live is not None
    assert (live["project_id"], live["board_id"], live["allow_bodies"]) == (a, "x1", False)
    assert store.share_by_hash("hash-2", 2_000) is None  # expired
    assert store.share_by_hash("hash-2", 500) is not None
    shares = {s["id"]: s for s in store.list_shares(a)}
    assert shares["s1"]["last_used_at"] is not None
    # Read again within the minute: the use is noted already, no write.
    assert store.share_by_hash("hash-1", 2_001) is not None
    assert {s["id"]: s for s in store.list_shares(a)}["s1"]["last_used_at"] == shares["s1"][
        "last_used_at"
    ]
    assert shares["s1"]["board_name"] == "Mine"
    assert store.list_shares(b) == []
    assert not store.revoke_share(b, "s1")
    assert store.revoke_share(a, "s1")
    assert not store.revoke_share(a, "s1")
    assert store.share_by_hash("hash-1", 2_000) is None
    store.delete_board(a, "x1")
    assert store.share_by_hash("hash-2", 500) is None
