"""The read side of a PostgreSQL store with a read replica (``--read-db``).

The queries that scan events (the events list and exports, one event, stats, templates,
unpriced models: ``store._query_reader()``) read from the replica; everything else reads and
writes on the primary (``--db``): ingest, feedback, keys, users and sessions, boards, test
sets, alert rules and leases, retention, migrations, derivation. Those control reads stay on
the primary because they must be current: a key is used the moment it is made, a session the
moment one logs in, a lease must see the other processes' leases.

A replica replays the primary's WAL a little behind (milliseconds, more under load). So that
a process reads its own writes (the page after a form that deleted events, added a feedback,
changed a price), each write of the process but ingest and derivation leaves a fence: the
primary's WAL position after its commit. Until the replica has replayed past the newest
fence, this process's queries read from the primary; the check is one short query on the
replica, made only while a fence waits. Ingest leaves none: under steady ingest every read
would go to the primary, and a client that stored events sees them once the replica has
them, as it would through any other server process.

Derivation (aggregates, text index, templates) runs on the primary, and the queries that
read derived rows (stats, templates, searches) derive first (``catch_up``). What derivation
wrote, such a query waits for the replica to replay (milliseconds; at most
``DERIVED_WAIT``, then it reads the primary): stats asked right after an ingest count it, as
on one server. The plain events list and one event read no derived rows, and do not wait.

The fence is the process's own: with several server processes (``--workers``, or behind a
load balancer) a page may come from a process that did not make the write, and be up to the
replica's lag behind. ``docs/scaling.md`` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from ._common import StoreUnavailable, mask_url
from ._pg import PooledReader, hide_password, open_pool

__all__ = ["ReadSide"]

log = logging.getLogger("llmtap.store")

# The WAL position as a number of bytes, comparable as an integer.
_INSERT_POSITION = "SELECT pg_current_wal_insert_lsn() - '0/0'"
# How long a query waits for the replica to replay derivation before it reads the primary.
DERIVED_WAIT = 1.0
# NULL on a server that is no standby (a read URL to the primary itself, through a pooler, say):
# it holds every commit, so it counts as caught up.
_REPLAYED = "SELECT pg_last_wal_replay_lsn() - '0/0'"


class ReadSide:
    """Where a store's queries read: ``primary`` when there is no replica (``url`` None),
    else the replica at ``url`` once it has replayed this process's writes."""

    def __init__(self, primary: PooledReader, url: str | None, pool_size: int) -> None:
        self.primary = primary
        self.url = url
        self.replica: PooledReader | None = None
        # WAL positions the replica must have replayed (0: none waits): of this process's
        # writes, and of derivation (see ``wrote``).
        self._fence = 0
        self._derived = 0
        self._lock = threading.Lock()
        if url is None:
            return
        # Opened without waiting: a replica down at start fails the queries (503), not the
        # server, whose ingest goes on.
        self._pool = open_pool(url, pool_size, name="llmtap-read")
        self.replica = PooledReader(self._pool, url, f"the read replica {mask_url(url)}")
        try:
            self.replica.execute("SELECT 1 FROM events LIMIT 0")
        except StoreUnavailable as e:
            log.warning("%s; queries fail until it is back", e)
        except psycopg.Error as e:  # reachable, but no llmtap store there
            self._pool.close()
            raise StoreUnavailable(
                f"the read replica {mask_url(url)} holds no llmtap store (it must be a replica"
                f" of --db): {hide_password(str(e).strip().splitlines()[0], url)}"
            ) from None

    def wrote(self, conn: psycopg.Connection[Any], derived: bool = False) -> None:
        """Called after a write committed on ``conn`` (the primary): this process's queries
        read from the primary until the replica has replayed it. ``derived``: the write
        was derivation (what the queries read, made current by ``catch_up`` before them):
        the queries wait for the replica to replay it, up to ``DERIVED_WAIT`` seconds, and
        read from the primary only past that."""
        if self.replica is None:
            return
        row = conn.execute(_INSERT_POSITION).fetchone()
        position = int(row[0]) if row else 0
        with self._lock:
            if derived:
                self._derived = max(self._derived, position)
            else:
                self._fence = max(self._fence, position)

    def reader(self, derived: bool = False) -> PooledReader:
        """The replica, unless a write of this process is not replayed there yet.
        ``derived``: the query reads derived rows (stats, templates, searches), so it also
        waits for the replica to replay the derivation done so far."""
        if self.replica is None:
            return self.primary
        fence, derived_at = self._fence, self._derived if derived else 0
        if not fence and not derived_at:
            return self.replica
        deadline = time.monotonic() + DERIVED_WAIT
        while True:
            row = self.replica.execute(_REPLAYED).fetchone()
            replayed = None if not row or row[0] is None else int(row[0])
            if replayed is None or replayed >= max(fence, derived_at):
                break
            if replayed < fence or time.monotonic() > deadline:
                return self.primary
            time.sleep(0.005)  # derivation replayed in a few ms, usually
        with self._lock:  # what is replayed waits no more (unless newer meanwhile)
            if self._fence <= fence:
                self._fence = 0
            if derived and self._derived <= derived_at:
                self._derived = 0
        return self.replica

    def close(self) -> None:
        if self.replica is not None:
            self._pool.close()
