"""Losing an event is never silent: the exporter counts every event in one state
(``client.stats()``), exactly, and logs every loss. Bursts go past the memory queue and past
the spool's limit with the server down, then the server comes up."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmtap
from llmtap.fake_provider import FakeProvider

from ._clients import record_calls
from .conftest import Project, free_port, start_server, stop_server, tap_config
from .faults import FaultProxy


@pytest.fixture
def down(project: Project) -> Iterator[FaultProxy]:
    """The project's server behind a proxy that is not listening yet: ``.start()`` brings
    the server up."""
    proxy = FaultProxy(project.server.url)
    yield proxy
    proxy.stop()


def tapped(provider: FakeProvider, project: Project, url: str, **config: Any) -> llmtap.Client:
    return llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        max_retries=0,
        llmtap={**tap_config(project), "url": url, **config},
    )


def settled(client: llmtap.Client, done: Callable[[llmtap.ExportStats], bool]) -> Any:
    """The client's stats once ``done`` holds of them (the builder works in the background)."""
    deadline = time.monotonic() + 30
    while True:
        stats = client.stats()
        assert stats.queued + stats.adopted == (
            stats.delivered + stats.failed + stats.dropped + stats.pending
        ), stats
        if done(stats):
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.02)


def stored(project: Project, name: str) -> int:
    groups = project.server.get("/api/v1/stats", project.key, prompt_template_name=name).json()[
        "groups"
    ]
    return int(groups[0]["count"]) if groups else 0


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_ten_batches_wait_in_memory_and_the_queue_past_its_bound_drops_what_it_counts(
    provider: FakeProvider, project: Project, down: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    client = tapped(provider, project, down.url, spool_max_bytes=0, max_queue=1000, batch_size=100)
    try:
        record_calls(client, 1000, "burst")
        # Ten batches wait for a server that is down: none of them is dropped.
        stats = settled(client, lambda s: s.pending == 1000)
        assert (stats.queued, stats.dropped, stats.delivered, stats.spooled) == (1000, 0, 0, 0)
        assert not warnings(caplog, "dropped")

        record_calls(client, 500, "late")  # past max_queue: each one dropped, and counted
        stats = settled(client, lambda s: s.queued == 1500)
        assert (stats.pending, stats.dropped, stats.failed) == (1000, 500, 0)
        [warning] = warnings(caplog, "memory queue full")
        assert "max_queue 1000" in warning and "1 events dropped so far" in warning

        down.start()  # the server comes up
        assert client.flush(60)
        stats = client.stats()
        assert (stats.delivered, stats.dropped, stats.pending, stats.failed) == (1000, 500, 0, 0)
        assert (stored(project, "burst"), stored(project, "late")) == (1000, 0)
    finally:
        client.close()


def spooled_events(spool: Path) -> int:
    return sum(int(p.name.split("-")[1]) for p in spool.rglob("*.batch*"))


def test_a_full_spool_drops_its_oldest_batches_counted_and_logged(
    provider: FakeProvider,
    project: Project,
    down: FaultProxy,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    limit = 40_000  # a few batches of 10 events
    client = tapped(
        provider,
        project,
        down.url,
        spool_dir=str(tmp_path),
        spool_max_bytes=limit,
        batch_size=10,
    )
    try:
        record_calls(client, 300, "spill")
        # What the stats say waits in the spool comes to be what its files hold (a batch the
        # sender is trying while the spool evicts it is counted once its attempt fails).
        stats = settled(
            client,
            lambda s: s.queued == 300 and s.pending == s.spooled == spooled_events(tmp_path),
        )
        assert stats.dropped > 0 and stats.pending > 0, stats
        assert stats.dropped + stats.pending == 300
        assert sum(p.stat().st_size for p in tmp_path.rglob("*.batch*")) <= limit
        [warning] = warnings(caplog, "spool over")
        assert f"spool over {limit} bytes" in warning

        down.start()
        assert client.flush(60)
        after = client.stats()
        assert (after.delivered, after.dropped, after.pending) == (stats.pending, stats.dropped, 0)
        assert stored(project, "spill") == stats.pending  # the newest ones
        assert spooled_events(tmp_path) == 0
    finally:
        client.close()


def test_a_batch_the_full_spool_drops_while_it_is_being_sent_is_counted_dropped_once(
    provider: FakeProvider, project: Project, down: FaultProxy, tmp_path: Path
) -> None:
    # The server answers, slowly and with an error: the sender holds the oldest batch for
    # seconds while the burst fills the spool, which drops that batch's file meanwhile.
    down.start()
    down.set("slow", delay=3.0, target=f"http://127.0.0.1:{free_port()}")
    client = tapped(
        provider, project, down.url, spool_dir=str(tmp_path), spool_max_bytes=40_000, batch_size=10
    )
    try:
        record_calls(client, 300, "held")
        stats = settled(
            client,
            lambda s: s.queued == 300 and s.pending == s.spooled == spooled_events(tmp_path),
        )
        assert stats.dropped + stats.pending == 300 and stats.pending < 300, stats

        down.set("pass", target=project.server.url)  # the server is reachable again
        assert client.flush(60)
        after = client.stats()
        assert (after.delivered, after.dropped, after.pending) == (stats.pending, stats.dropped, 0)
        assert stored(project, "held") == stats.pending
    finally:
        client.close()


def test_events_the_server_refuses_are_counted_failed_and_logged(
    provider: FakeProvider, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    client = tapped(provider, project, project.server.url, api_key="lt_not-a-key")
    try:
        record_calls(client, 7, "refused")
        assert client.flush(30)  # nothing left to send: refused for good
        stats = client.stats()
        assert (stats.queued, stats.failed, stats.delivered, stats.pending) == (7, 7, 0, 0)
        assert warnings(caplog, "HTTP 401")
    finally:
        client.close()


def test_clients_with_other_delivery_settings_get_their_own_exporter(
    provider: FakeProvider, project: Project
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    first = tapped(provider, project, closed, spool_max_bytes=0, flush_timeout=0.1)
    small = first.with_options(llmtap={"max_queue": 2})
    same = tapped(provider, project, closed, spool_max_bytes=0, flush_timeout=0.1)
    try:
        record_calls(small, 5, "small")
        record_calls(first, 3, "first")
        # The copy's bound is its own: it dropped 3 of its 5; the first client dropped none.
        assert (small.stats().queued, small.stats().dropped) == (5, 3)
        assert (first.stats().queued, first.stats().dropped) == (3, 0)
        assert same.stats() == first.stats()  # the same settings share one exporter
    finally:
        for client in (first, small, same):
            client.close()


EXIT_SCRIPT = """
import sys, llmtap
from llmtap.fake_provider import FakeProvider
provider = FakeProvider().start()
client = llmtap.Client(api_key="sk", base_url=provider.base_url, llmtap={
    "url": sys.argv[1], "api_key": "k", "spool_max_bytes": 0, "max_queue": 5,
    "flush_timeout": 0.2})
for i in range(8):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
"""


def test_what_is_lost_is_summed_up_at_exit() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), closed],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert (
        "llmtap: of 8 events, 0 delivered, 3 dropped, 0 refused by the server, 5 lost at exit,"
        " 0 left in the spool for the next run" in run.stderr
    ), run.stderr


def test_a_batch_too_large_is_split_and_an_event_too_large_refused(
    provider: FakeProvider, tmp_path: Path
) -> None:
    server = start_server(tmp_path, env={"LLMTAP_MAX_BODY_BYTES": "30000"})
    key = server.new_key()
    client = llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        max_retries=0,
        llmtap={"url": server.url, "api_key": key, "batch_size": 40, "flush_interval": 60},
    )
    try:
        words = " ".join(["word"] * 400)  # ~2 KB a prompt, ~4 KB an event: 40 of them ~160 KB
        for i in range(39):
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"{i} {words}"}]
            )
        client.chat.completions.create(  # over the limit alone: cannot be split
            model="m", messages=[{"role": "user", "content": "x" * 40_000}]
        )
        assert client.flush(60)
        stats = client.stats()
        assert (stats.queued, stats.delivered, stats.failed, stats.pending) == (40, 39, 1, 0)
        stored = Project(key, server).events(limit="100")
        assert len(stored) == 39
    finally:
        client.close()
        stop_server(server)


def test_calls_made_while_a_batch_is_built_wait_for_a_batch_of_their_own(
    provider: FakeProvider, project: Project
) -> None:
    """Each batch costs a spool file and a request: the few calls that come in while one is
    built wait for theirs to fill (or for the interval, or a flush), not leave as crumbs."""
    client = tapped(provider, project, project.server.url, batch_size=20, flush_interval=60)

    class Meanwhile:
        """An attribute value the exporter serialises (by its repr) while it builds the
        batch: the moment three more calls come in."""

        made = False

        def __repr__(self) -> str:
            if not Meanwhile.made:
                Meanwhile.made = True
                record_calls(client, 3, "crumbs")
            return "meanwhile"

    client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "first"}],
        llmtap={"prompt_template_name": "full", "attributes": {"moment": Meanwhile()}},
    )
    record_calls(client, 19, "full")  # the twentieth call fills a batch and wakes the builder
    settled(client, lambda s: s.delivered >= 20)
    time.sleep(0.5)
    stats = client.stats()
    assert Meanwhile.made and (stats.delivered, stats.pending) == (20, 3), stats
    assert client.flush(timeout=10)
    assert client.stats().delivered == 23
    assert (stored(project, "full"), stored(project, "crumbs")) == (20, 3)
    client.close()


@pytest.mark.parametrize("status", ["520", "404"])
def test_a_proxys_odd_answer_keeps_the_batch_to_send_again(
    provider: FakeProvider, project: Project, down: FaultProxy, status: str
) -> None:
    """A 5xx of any number (Cloudflare's 52x) or a 404 from a proxy in front of a server being
    deployed says nothing of the events: they wait in the spool and go out once it passes."""
    down.start()
    down.set(status)
    client = tapped(provider, project, down.url)
    try:
        record_calls(client, 5, f"odd-{status}")
        settled(client, lambda s: down.requests > 0 and s.pending == 5)
        assert client.stats().failed == 0
        down.set("pass", target=project.server.url)
        assert client.flush(60)
        assert (client.stats().delivered, stored(project, f"odd-{status}")) == (5, 5)
    finally:
        client.close()


def test_a_call_recorded_while_the_exporter_starts_its_threads_does_not_hang(
    provider: FakeProvider, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream dropped unread is recorded by its guard when the garbage collector frees it,
    which may happen anywhere: inside the exporter's start, on the thread holding its lock.
    That call goes to the queue (the threads being started take it) and nothing waits."""
    from llmtap.sdk import _exporter

    client = tapped(provider, project, project.server.url)
    started = threading.Thread  # the real one

    class Collected(started):  # type: ignore[misc,valid-type]
        nested = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if Collected.nested and kwargs.get("name") == "llmtap-builder":
                Collected.nested = False  # what a guard's __del__ would do, right here
                record_calls(client, 1, "reentered")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(_exporter.threading, "Thread", Collected)
    worker = started(target=record_calls, args=(client, 1, "first"), daemon=True)
    worker.start()
    worker.join(20)
    monkeypatch.undo()
    try:
        assert not worker.is_alive(), "the call hangs on the exporter's lock"
        assert client.flush(30)
        assert (stored(project, "first"), stored(project, "reentered")) == (1, 1)
    finally:
        client.close()
