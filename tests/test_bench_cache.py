"""The query benchmark's cached store, made from an empty cache at a small size: the file it
leaves is whole on its own (no WAL beside it), readable by its owner only, holds every event,
and is reused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.query import cached_store

from llmtap.store import EventFilter, open_store


def test_generated_store_is_whole_and_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    db, generated_s = cached_store(2000, cache)
    assert generated_s is not None and generated_s > 0
    assert sorted(p.name for p in cache.iterdir()) == ["events-2000.db"]
    assert db.stat().st_mode & 0o777 == 0o600  # generated prompts: the owner's alone
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert raw.execute("SELECT count(*) FROM events").fetchone() == (2000,)
    finally:
        raw.close()
    store = open_store(str(db))
    try:
        answer = store.stats(1, EventFilter(), ["model"])
        assert answer["source"] == "aggregates"
        assert sum(g["count"] for g in answer["groups"]) == 2000
    finally:
        store.close()
    again, generated_again = cached_store(2000, cache)
    assert (again, generated_again) == (db, None)
