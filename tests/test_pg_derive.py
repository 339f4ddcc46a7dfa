"""PostgreSQL derives after the commit, from a queue (see ``llmtap.store._pg_derive``): derivers
of several processes at once, writers beside them, ratings and deletes racing ingest, and a
process killed mid-derivation still count each event exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from llmtap.store import EventFilter, KeyInfo, Store
from llmtap.store._postgres import PostgresStore

from ._postgres import Postgres
from .test_derive import rows

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def database(postgres: Postgres) -> Iterator[str]:
    url = postgres.fresh_database()
    yield url
    postgres.drop(url)


def _queued(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM derive_queue").fetchone()
        assert row is not None
        return int(row[0])


def _counts(store: Store, project: int) -> tuple[int, dict[str, int], int]:
    """Events in the stats: in all, by attribute value, and rated."""
    total = store.stats(project, EventFilter(), [])["groups"][0]
    by_user = store.stats(project, EventFilter(), ["attributes.user"])["groups"]
    return (
        int(total["count"]),
        {g["key"]["attributes.user"]: int(g["count"]) for g in by_user},
        int(total["ratings"] or 0),
    )


def test_two_processes_deriving_at_once_count_each_event_once(database: str) -> None:
    """Two stores (what two server processes are) whose derivers run every 10 ms, while
    both ingest, some batches to both: every event counted once, the queue left empty."""
    a = PostgresStore(database, derive_delay=0.01)
    b = PostgresStore(database, derive_delay=0.01)
    try:
        key = KeyInfo(1, a.ensure_project("p"), "p", "dev")
        batches = [rows(60, key) for _ in range(24)]

        # A third of the batches go to both stores: stored once, by whichever is first.
        jobs = [
            (store, batch)
            for i, batch in enumerate(batches)
            for store in ((a,), (b,), (a, b))[i % 3]
        ]

        with ThreadPoolExecutor(8) as pool:
            stored = sum(pool.map(lambda job: job[0].insert_events(job[1]), jobs))
        assert stored == 24 * 60
        # Both catch up at once as well.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.catch_up(), (a, b)))
        for store in (a, b):
            assert _counts(store, key.project_id) == (1440, {"u0": 720, "u1": 720}, 0)
        assert _queued(database) == 0
    finally:
        a.close()
        b.close()


def test_ratings_and_deletes_racing_ingest_count_once(database: str) -> None:
    """Feedback and deletes wait for the project's writers and derive what they queued
    first: a rating is counted once whether its event was derived, queued, or not stored
    yet, and a delete takes out exactly what it removes."""
    a = PostgresStore(database, derive_delay=0.01)
    b = PostgresStore(database, derive_delay=3600.0)
    try:
        key = KeyInfo(1, a.ensure_project("p"), "p", "dev")
        batches = [rows(20, key, feedback_key=f"fk{i}") for i in range(30)]

        def ingest(i: int) -> None:
            (a, b)[i % 2].insert_events(batches[i])

        def rate() -> int:
            n = 0
            for i in range(30):
                (b, a)[i % 2].insert_feedback(key.project_id, f"fk{i}", 1.0, None, f"f{i}")
                n += 1
            return n

        with ThreadPoolExecutor(6) as pool:
            rated = pool.submit(rate)
            list(pool.map(ingest, range(30)))
            assert rated.result() == 30
        a.catch_up()
        # Each feedback rates the 20 events of its key: 600 ratings, stored in either order.
        assert _counts(b, key.project_id) == (600, {"u0": 300, "u1": 300}, 600)
        more = [rows(10, key) for _ in range(10)]
        with ThreadPoolExecutor(4) as pool:
            gone = pool.submit(b.delete_events, key.project_id, EventFilter(model="gpt-4o-mini"))
            list(pool.map(lambda i: (a, b)[i % 2].insert_events(more[i]), range(10)))
            deleted = gone.result()
        left = 600 + 100 - deleted
        assert deleted >= 600
        listed = sum(1 for _ in a.iter_events(key.project_id, EventFilter()))
        assert listed == left
        total, by_user, ratings = _counts(a, key.project_id)
        assert (total, sum(by_user.values()), ratings) == (left, left, 0)
    finally:
        a.close()
        b.close()


_DERIVING = """
import sys
from llmtap.store import KeyInfo
from llmtap.store._postgres import PostgresStore
from tests.test_derive import rows
store = PostgresStore({url!r}, derive_delay=3600.0)
key = KeyInfo(1, store.ensure_project("p"), "p", "dev")
store.insert_events(rows(21000, key))  # one commit: it wakes the deriver thread too
print("stored", flush=True)
store.catch_up()
print("derived", flush=True)
"""


def test_kill_9_mid_derivation_counts_each_event_once(database: str) -> None:
    """A process killed while it derives (after its first chunk committed, in its second):
    the chunk it was deriving is derived by the next store to open, the first not again."""
    script = textwrap.dedent(_DERIVING.format(url=database))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "stored"
        deadline = time.monotonic() + 120
        while _queued(database) >= 21_000 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    left = _queued(database)
    assert 0 < left < 21_000, "the kill did not land mid-derivation"
    store = PostgresStore(database, derive_delay=3600.0)
    try:
        counts: Any = _counts(store, 1)
        assert counts == (21_000, {"u0": 10_500, "u1": 10_500}, 0)
        assert _queued(database) == 0
    finally:
        store.close()


def test_histograms_merged_over_many_chunks_are_exact(database: str) -> None:
    """Six chunks derived one after another into the same aggregate rows (one minute, one
    combination, two attribute values; minute, hour and day), each with latencies and TTFTs
    of its own scale, so a chunk's histogram lost, doubled or misplaced in the merge (done
    in Python on PostgreSQL, see ``_derive._add_aggregates``) moves the percentiles: the
    stats' percentiles are those of one histogram of every value, and within its 2.5% of
    the exact ones."""
    from llmtap.server.ingest import prepare
    from llmtap.store import _hist
    from llmtap.wire import Event, make_event

    store = PostgresStore(database, derive_delay=3600.0)
    try:
        key = KeyInfo(1, store.ensure_project("p"), "p", "dev")
        rng = random.Random(12)
        sent: dict[str, list[tuple[float, float | None]]] = {"u0": [], "u1": []}
        for chunk in range(6):
            batch = []
            for i in range(120):
                latency = rng.lognormvariate(4 + chunk, 0.3)
                ttft = None if i % 5 == 0 else latency * rng.uniform(0.05, 0.5)
                user = f"u{i % 2}"
                sent[user].append((latency, ttft))
                event = make_event(
                    id=str(uuid.uuid4()),
                    api="chat",
                    provider="openai",
                    model="gpt-4o-mini",
                    status="ok",
                    started_at=f"2026-05-01T12:00:{chunk:02d}+00:00",
                    latency_ms=latency,
                    ttft_ms=ttft,
                    attributes={"user": user},
                )
                batch.append(prepare(Event.model_validate(event), key, 0, None))
            assert store.insert_events(batch) == 120
            store.catch_up()  # a chunk of its own, into the rows the earlier ones made
        assert _queued(database) == 0

        def check(group: dict[str, Any], values: list[tuple[float, float | None]]) -> None:
            lat = [v for v, _ in values]
            ttft = [t for _, t in values if t is not None]
            assert group["count"] == len(values)
            qs = (0.5, 0.9, 0.95, 0.99)
            for name, got, want in zip(
                ("p50", "p90", "p95", "p99"),
                [group["latency_ms"][n] for n in ("p50", "p90", "p95", "p99")],
                _hist.percentiles(_hist.histogram(lat), qs),
                strict=True,
            ):
                assert got == pytest.approx(want, rel=1e-9), name
            for q, name in zip(qs, ("p50", "p90", "p95", "p99"), strict=True):
                exact = _hist.exact_percentile(lat, q)
                assert group["latency_ms"][name] == pytest.approx(exact, rel=0.025)
            want_ttft = _hist.percentiles(_hist.histogram(ttft), (0.5, 0.95))
            assert [group["ttft_ms"]["p50"], group["ttft_ms"]["p95"]] == pytest.approx(want_ttft)

        everything = sent["u0"] + sent["u1"]
        for group_by in ([], ["minute"], ["hour"], ["day"]):
            (group,) = store.stats(key.project_id, EventFilter(), group_by)["groups"]
            check(group, everything)
        by_user = store.stats(key.project_id, EventFilter(), ["attributes.user"])["groups"]
        assert len(by_user) == 2
        for group in by_user:
            check(group, sent[group["key"]["attributes.user"]])
    finally:
        store.close()


def test_ascii_tokens_are_the_patterns() -> None:
    """ASCII text is tokenized by a translation and a split (see ``_pg_text.tokens``): the
    same tokens, in the same order, as the pattern that splits every other text, on random
    ASCII (every character: controls, punctuation, underscores, digits, capitals)."""
    import re

    from llmtap.store._pg_text import tokens

    pattern = re.compile(r"[^\W_]+")
    rng = random.Random(3)
    for _ in range(5000):
        text = "".join(chr(rng.randrange(128)) for _ in range(rng.randrange(40)))
        assert tokens(text) == list(dict.fromkeys(pattern.findall(text.lower()))), repr(text)
    long = "x" * 600 + " ok " + "y" * 100
    assert tokens(long) == ["ok", "y" * 100]  # a token past 512 bytes is not searchable


def test_an_event_whose_derivation_failed_can_be_rated_repriced_and_deleted(
    database: str,
) -> None:
    """A model and a template name of 512 emoji each, in no order a compression finds (stored
    before the wire bounded names in bytes), make an aggregate index row past PostgreSQL's
    2,704 bytes: the event is left
    out of the stats. Rating it, repricing its model and deleting it work; they had raised
    for good (500s, and a purge that stopped)."""
    from llmtap.store._common import EVENT_COLUMNS

    store = PostgresStore(database)
    try:
        pid = store.ensure_project("p")
        key = KeyInfo(1, pid, "p", "dev")
        wide = {EVENT_COLUMNS.index("model"), EVENT_COLUMNS.index("prompt_template_name")}
        (bad,) = rows(1, key, feedback_key="fk-bad")
        pick = random.Random(7).randrange
        emoji = "".join(chr(pick(0x1F300, 0x1FAFF)) for _ in range(512))
        bad = tuple(emoji if j in wide else v for j, v in enumerate(bad))
        assert store.insert_events([*rows(2, key), bad]) == 3
        assert store.stats(pid, EventFilter(), [])["groups"][0]["count"] == 2
        assert store.insert_feedback(pid, "fk-bad", 0.5, None)
        prices = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
        store.set_price_override(pid, emoji, 0, prices, lambda _: lambda _e: 1.0)
        assert store.delete_events(pid, EventFilter()) == 3
        assert store.stats(pid, EventFilter(), [])["groups"] == []
    finally:
        store.close()
