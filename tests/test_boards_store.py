"""Boards in the store (every backend): versions on every save, a project sees only its own
boards and links, a link works until it is revoked or expires."""

from __future__ import annotations

from llmtap.store import DEAD_LINKS_KEPT, LIVE_LINKS, VERSIONS_KEPT, Store

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


def test_a_board_keeps_its_newest_versions_and_a_bounded_number_of_links(store: Store) -> None:
    """Saved or linked in a loop (a script, a leaked key), a board's history and links stay
    bounded: the newest VERSIONS_KEPT versions, LIVE_LINKS live links at once, and the newest
    DEAD_LINKS_KEPT revoked or expired ones listed."""
    p = store.ensure_project("p")
    store.create_board(p, "x1", "v1", SPEC, "ann")
    last = 1
    for n in range(2, VERSIONS_KEPT + 6):
        last = store.update_board(p, "x1", f"v{n}", SPEC, False, "ann") or 0
    versions = [v["version"] for v in store.board_versions(p, "x1")]
    assert versions == list(range(last, last - VERSIONS_KEPT, -1))
    assert store.board_version(p, "x1", last - VERSIONS_KEPT) is None
    kept = store.board_version(p, "x1", last - VERSIONS_KEPT + 1)
    assert kept is not None and kept["name"] == f"v{last - VERSIONS_KEPT + 1}"

    for n in range(LIVE_LINKS):
        assert store.create_share(p, f"live{n:03}", "x1", f"h{n}", "ann", None, False)
    assert not store.create_share(p, "one-more", "x1", "h-more", "ann", None, False)
    assert store.share_by_hash("h-more", 0) is None
    assert store.revoke_share(p, "live000")
    assert store.create_share(p, "in-its-place", "x1", "h-place", "ann", None, False)
    for n in range(1, LIVE_LINKS):
        assert store.revoke_share(p, f"live{n:03}")
    for n in range(5):  # each made, then revoked: the dead ones past the newest go
        assert store.create_share(p, f"late{n}", "x1", f"late{n}", "ann", None, False)
        assert store.revoke_share(p, f"late{n}")
    dead = [s for s in store.list_shares(p) if s["revoked_at"] is not None]
    assert len(dead) == DEAD_LINKS_KEPT + 1  # the last one revoked after the last made
    assert {"late4", "late3"} <= {s["id"] for s in dead}
    assert store.share_by_hash("h-place", 0) is not None
