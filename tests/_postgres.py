"""The PostgreSQL server the suite's PostgreSQL tests use (a pytest plugin, see ``conftest.py``).

``LLMTAP_TEST_POSTGRES_URL`` (a superuser's URL, e.g. ``postgresql://postgres@host:5432/postgres``)
points the suite at a server that runs already. Otherwise the first test that needs one starts
a throwaway cluster: ``initdb`` in a fresh temporary folder (as the ``postgres`` user when the
suite runs as root: PostgreSQL refuses to run as root), listening on 127.0.0.1 only, on a free
port, without fsync (a crash of a test cluster loses nothing anyone needs). It is stopped and
its folder removed when the session ends.

PostgreSQL that cannot be started fails the tests that need it, with the reason: a PostgreSQL
test never skips.

``postgres_replica`` adds a streaming replica of that server (``Replica``: ``pg_basebackup -R``,
a hot standby on a free port), for the tests of ``--read-db``; it too fails, never skips.

Each test gets a database of its own (``fresh_database``): a copy of a template database that
was migrated once per session, which ``CREATE DATABASE ... TEMPLATE`` makes in milliseconds,
where migrating a new database each time would take a second.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_URL = "LLMTAP_TEST_POSTGRES_URL"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL is not installed (no initdb): run `make system-deps` (Debian package"
        f" postgresql), or point {ENV_URL} at a server"
    )


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary folder; ``stop``/``start`` for the tests
    of a server restarted under a running llmtap."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="llmtap-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.as_root = os.getuid() == 0
        if self.as_root:  # initdb and postgres refuse root: the folder is postgres's
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.folder),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
            "max_connections": "400",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = '{v}'\n" for k, v in options.items())
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class Replica(Cluster):
    """A streaming replica (hot standby) of the PostgreSQL server at ``primary_url``, in a
    temporary folder, on a free port: ``pg_basebackup -R`` (a base copy set up to follow the
    primary), then started. It replays everything the primary does, every database included,
    and refuses writes (a read-only server: a write sent to it fails loudly). The suite's
    cluster allows it as it is: ``wal_level`` is ``replica`` and ``max_wal_senders`` 10 by
    default, and ``initdb``'s ``pg_hba.conf`` trusts replication on loopback."""

    def __init__(self, primary_url: str) -> None:  # not Cluster's: that one runs initdb
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="llmtap-pg-replica-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.as_root = os.getuid() == 0
        if self.as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        primary = urlsplit(primary_url)
        try:
            self._run(
                "pg_basebackup",
                "--pgdata",
                str(self.data),
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
                "--host",
                primary.hostname or "127.0.0.1",
                "--port",
                str(primary.port or 5432),
                "--username",
                primary.username or "postgres",
                "--no-password",
            )
            options = {
                "port": str(self.port),
                "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(self.folder),
                "hot_standby": "on",
            }
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{k} = '{v}'\n" for k, v in options.items())
            self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
            self.start()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def url_of(self, database: str) -> str:
        return urlunsplit(urlsplit(self.url)._replace(path="/" + database))

    def has(self, database: str, timeout: float = 60) -> str:
        """The URL of ``database`` on the replica, once it has replayed its creation."""
        import psycopg

        url = self.url_of(database)
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(url, connect_timeout=5).close()
                return url
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


class Postgres:
    """The suite's PostgreSQL server: fresh databases on it, each from the migrated template."""

    def __init__(self, url: str, cluster: Cluster | None) -> None:
        self.url = url
        self.cluster = cluster
        self._numbers = itertools.count()
        self._prefix = f"llmtap_test_{os.getpid()}"
        self._template: str | None = None
        # Databases are made ahead and dropped behind, on a thread of their own: a property
        # test that takes a database per example (hundreds) waits for neither.
        self._work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._ready: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._conn: Any = None
        self._worker = threading.Thread(target=self._background, daemon=True)
        self._worker.start()

    def url_of(self, database: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + database))

    def admin(self, sql: str) -> None:
        import psycopg

        with self._lock:  # one connection, shared by the test's thread and the worker
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, autocommit=True)
            self._conn.execute(sql)

    def _make(self) -> str:
        name = f"{self._prefix}_{next(self._numbers)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    def fresh_database(self) -> str:
        """The URL of a new database with llmtap's schema, empty."""
        if self._template is None:
            from llmtap.store import open_store

            template = f"{self._prefix}_template"
            self.admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            self.admin(f'CREATE DATABASE "{template}"')
            open_store(self.url_of(template)).close()
            self._template = template
        try:
            name = self._ready.get_nowait()
        except queue.Empty:
            name = self._make()
        self._work.put(("make", ""))
        return self.url_of(name)

    def drop(self, url: str) -> None:
        self._work.put(("drop", urlsplit(url).path.lstrip("/")))

    def _background(self) -> None:
        while (job := self._work.get()) is not None:
            action, name = job
            with contextlib.suppress(Exception):  # a test's own call says what is wrong
                if action == "drop":
                    self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                elif self._ready.qsize() < 2:
                    self._ready.put(self._make())

    def close(self) -> None:
        if self.cluster is not None:  # removed whole: what is queued need not be done
            with contextlib.suppress(queue.Empty):
                while True:
                    self._work.get_nowait()
        self._work.put(None)
        self._worker.join(120)
        if self.cluster is None:
            while not self._ready.empty():
                self.admin(f'DROP DATABASE IF EXISTS "{self._ready.get()}" WITH (FORCE)')
            if self._template is not None:
                self.admin(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        if self._conn is not None:
            self._conn.close()
        if self.cluster is not None:
            self.cluster.remove()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The suite's PostgreSQL server (see the module's docstring). Fails, never skips, when
    there is none."""
    url = os.environ.get(ENV_URL)
    cluster = None
    if not url:
        try:
            cluster = Cluster()
        except (RuntimeError, OSError, KeyError, subprocess.TimeoutExpired) as e:
            pytest.fail(f"cannot start PostgreSQL for the PostgreSQL tests: {e}", pytrace=False)
        url = cluster.url
    server = Postgres(url, cluster)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_replica(postgres: Postgres) -> Iterator[Replica]:
    """A streaming replica of the suite's PostgreSQL server (see ``Replica``). Fails, never
    skips, when it cannot be made."""
    try:
        replica = Replica(postgres.url)
    except (RuntimeError, OSError, KeyError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"cannot make a replica of the suite's PostgreSQL: {e}", pytrace=False)
    try:
        yield replica
    finally:
        replica.remove()
