"""The store fixtures: one suite, every backend (a pytest plugin, see ``conftest.py``).

A test that takes ``store`` (a fresh, empty store) or ``store_backend`` (fresh databases and
stores on them, for a test that opens one database twice or wants many) runs once per name in
``STORE_BACKENDS``, as ``test_x[sqlite]``. It sees only the ``Store`` contract, so what it
checks holds for every backend. Tests of one backend's insides (its files, its SQL) open that
backend themselves.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmtap.store import SQLiteStore, Store, open_store

from ._postgres import Postgres

# PostgreSQL: the suite's server (tests/_postgres.py), each ``fresh_db`` a database of its
# own on it, dropped when the test ends.
STORE_BACKENDS = ["sqlite", "postgresql"]


class StoreBackend:
    """One backend, for one test: where fresh databases are, and the stores opened on them
    (every one still open is closed when the test ends)."""

    def __init__(self, name: str, tmp: Path, postgres: Postgres | None = None) -> None:
        self.name = name
        self._tmp = tmp
        self._postgres = postgres
        self._databases: list[str] = []
        self._numbers = itertools.count()
        self._open: list[Store] = []

    def fresh_db(self) -> str:
        """A new, empty database, as ``open_store`` takes it."""
        if self.name == "sqlite":
            return str(self._tmp / f"store-{next(self._numbers)}.db")
        assert self._postgres is not None
        url = self._postgres.fresh_database()
        self._databases.append(url)
        return url

    def open(self, db: str, derive_delay: float | None = None) -> Store:
        """A store on ``db`` (one more, when one is open on it already: what another server
        process is). ``derive_delay``: how long stored events may wait to be derived, for a
        test that wants them waiting; the backend's default when None."""
        if derive_delay is None:
            store: Store = open_store(db)
        elif self.name == "sqlite":
            store = SQLiteStore(db, derive_delay=derive_delay)
        else:
            from llmtap.store._postgres import PostgresStore  # psycopg: PostgreSQL runs only

            store = PostgresStore(db, derive_delay=derive_delay)
        self._open.append(store)
        return store

    def new(self, derive_delay: float | None = None) -> Store:
        """A store on a fresh database."""
        return self.open(self.fresh_db(), derive_delay)

    def close(self, store: Store) -> None:
        """Close ``store`` now (a test that reopens its database, say)."""
        self._open.remove(store)
        store.close()

    def close_all(self) -> None:
        while self._open:
            self._open.pop().close()
        if self._postgres is not None:
            while self._databases:
                self._postgres.drop(self._databases.pop())


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    backend = StoreBackend(request.param, tmp_path, postgres)
    try:
        yield backend
    finally:
        backend.close_all()


@pytest.fixture
def store(store_backend: StoreBackend) -> Store:
    """A fresh, empty store of each backend in turn."""
    return store_backend.new()
