"""Where events live: one contract (``Store``), a backend per module (SQLite by default).

The server, the dashboard and the CLI code against ``Store`` and call its methods, nothing
else: they get a store from ``open_store`` and import only the names below, never a private
module of this package (a test walks the sources). The SDK never imports the store.

A backend is a class whose methods are thin: each is a plain function of a module by concern
(``_queries``, ``_admin``, ``_users``, ``_delete``, ``_boards`` for SQLite) on the backend's
connections.
``tests/test_store_contract.py`` checks that every backend has every member of ``Store``
with the same signature; the store tests run against each backend (``store`` fixture).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

from ._admin import KEYS_CHANGED
from ._boards import DEAD_LINKS_KEPT, LIVE_LINKS, VERSIONS_KEPT
from ._common import (
    ROLES,
    EventFilter,
    Invitation,
    KeyInfo,
    NameTaken,
    SessionUser,
    StoreUnavailable,
    UserRecord,
    decode_cursor,
    event_row,
    mask_url,
    search_words,
    to_us,
)
from ._facts import attribute_text
from ._sqlite import SQLiteStore
from ._stats import BUCKET_SECONDS, EVENTS_ONLY_GROUPS, GROUPS, TIME_GROUPS, bucket_start

__all__ = [
    "BUCKET_SECONDS",
    "DEAD_LINKS_KEPT",
    "EVENTS_ONLY_GROUPS",
    "GROUPS",
    "KEYS_CHANGED",
    "LIVE_LINKS",
    "ROLES",
    "TIME_GROUPS",
    "VERSIONS_KEPT",
    "EventFilter",
    "Invitation",
    "KeyInfo",
    "NameTaken",
    "SQLiteStore",
    "SessionUser",
    "Store",
    "StoreUnavailable",
    "UserRecord",
    "attribute_text",
    "bucket_start",
    "decode_cursor",
    "describe_db",
    "event_row",
    "is_url",
    "open_store",
    "search_words",
    "to_us",
]


class Store(Protocol):
    """What a store does, whatever the database. Every method may block (it does I/O): the
    server calls them from worker threads, never on the event loop. Methods are thread-safe.
    ``project_id`` arguments are ids from ``ensure_project``/``key_by_hash``; a project's
    data is never visible through another's id."""

    # "sqlite" or "postgresql": said at startup, nothing depends on it.
    backend: str
    # Names of the schema migrations this open applied (none: the schema was current).
    applied_migrations: list[str]

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Finish what is pending (derivation) and release the connections."""

    def catch_up(self) -> None:
        """Make every event stored so far, by any process, count in stats, templates and
        searches. Reads that need it call it themselves; cheap when nothing waits."""

    # -- events: writing -------------------------------------------------------------------

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Store event rows (``event_row``); an id already stored in the project is skipped.
        Returns how many were new. Durable when it returns."""

    def insert_feedback(
        self,
        project_id: int,
        feedback_key: str,
        rating: float | None,
        better: str | None,
        feedback_id: str | None = None,
    ) -> bool:
        """Store a feedback; False when one with this ``feedback_id`` is stored already."""

    # -- events: reading -------------------------------------------------------------------

    def get_event(self, project_id: int, event_id: str) -> dict[str, Any] | None:
        """One event with its ``feedback`` list; None when the project has no such event."""

    def list_events(
        self, project_id: int, f: EventFilter, *, summary: bool = False, max_bytes: int = ...
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the events ``f`` selects, in ``f.sort`` order, and the next page's cursor
        (None on the last). ``summary``: without the large fields; ``max_bytes``: a page
        stops early past this many bytes of events."""

    def iter_events(self, project_id: int, f: EventFilter) -> Iterator[dict[str, Any]]:
        """Every event ``f`` selects, page by page (memory stays flat)."""

    # -- stats and templates ---------------------------------------------------------------

    def stats(self, project_id: int, f: EventFilter, group_by: list[str]) -> dict[str, Any]:
        """Count, errors, tokens, cost, latency and TTFT percentiles, average rating of the
        events ``f`` selects, per group (``GROUPS``, ``attributes.KEY``)."""

    def stats_many(
        self, project_id: int, f: EventFilter, groupings: list[list[str]]
    ) -> list[dict[str, Any]]:
        """``stats`` for several groupings of the same events, in one pass."""

    def templates(
        self,
        project_id: int,
        name: str | None = None,
        limit: int = 500,
        revision: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``limit`` prompt templates last used (or the one ``name``), each with its 100
        newest revisions and their stats (``revisions_left_out``: how many older);
        ``revision``: only those whose id starts with it (two at most)."""

    # -- prices ----------------------------------------------------------------------------

    def price_overrides(self, project_id: int, model: str | None = None) -> list[dict[str, Any]]:
        """The project's price overrides (of one model, when given)."""

    def unpriced_models(self, project_id: int) -> list[dict[str, Any]]:
        """Models whose events have usage but no price, with how many events each."""

    def set_price_override(
        self,
        project_id: int,
        model: str,
        since_us: int,
        prices: dict[str, float | None] | None,
        cost_of: Callable[[list[dict[str, Any]]], Callable[[dict[str, Any]], float | None]],
    ) -> int:
        """Store (``prices`` None: remove) an override and reprice the model's events with
        ``cost_of``, in one transaction; how many events changed cost."""

    def reprice(
        self,
        project_id: int,
        model: str,
        cost_of: Callable[[list[dict[str, Any]]], Callable[[dict[str, Any]], float | None]],
    ) -> int:
        """Price the model's stored events again with ``cost_of`` (of its overrides stored
        now), in one transaction; how many events changed cost."""

    # -- projects and keys -----------------------------------------------------------------

    def ensure_project(self, name: str) -> int:
        """The id of the project ``name``, made if missing."""

    def project_id(self, name: str) -> int | None:
        """The id of the project ``name``; None when there is none."""

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project with its environments, active key count and creation time."""

    def create_key(
        self,
        project: str,
        environment: str,
        key_hash: str,
        prefix: str,
        scopes: Iterable[str] = ...,
        env_only: bool = False,
    ) -> int:
        """A new API key (stored by hash) of ``project``, made if missing; its id."""

    def key_by_hash(self, key_hash: str) -> KeyInfo | None:
        """The active key with this hash."""

    def list_keys(self, project_id: int) -> list[dict[str, Any]]:
        """The project's keys, newest first, revoked ones included (never their hash)."""

    def set_key_scopes(
        self, project_id: int, key_id: int, scopes: list[str], env_only: bool
    ) -> bool:
        """Change an active key's scopes; False when the project has no such key."""

    def revoke_key(self, project_id: int, key_id: int) -> bool:
        """Revoke an active key; False when the project has no such key."""

    # -- users, sessions, invitations, failed logins ---------------------------------------

    def count_users(self) -> int: ...

    def create_user(
        self,
        name: str,
        password_hash: str,
        is_owner: bool = False,
        project_id: int | None = None,
        role: str | None = None,
        only_if_first: bool = False,
    ) -> int | None:
        """A new user (with a ``role`` in a project, if given); its id. ``only_if_first``:
        None unless no user existed. Raises ``NameTaken``."""

    def user_by_name(self, name: str) -> UserRecord | None: ...

    def set_password(
        self, user_id: int, password_hash: str, now_us: int, keep: str | None = None
    ) -> None:
        """A new password; every session of the user ends but ``keep`` (a session hash)."""

    def delete_user(self, user_id: int) -> bool:
        """Remove a user with their sessions and roles; False when there is none."""

    def list_users(self, project_id: int | None = None) -> list[dict[str, Any]]:
        """Every user (or a project's members) with their ``roles``: {project name: role}."""

    def set_role(self, user_id: int, project_id: int, role: str) -> bool:
        """Change a member's role; False when they are not a member."""

    def remove_member(self, user_id: int, project_id: int) -> bool: ...

    def create_session(
        self, user_id: int, id_hash: str, csrf: str, now_us: int, expires_us: int
    ) -> None: ...

    def session_user(self, id_hash: str, now_us: int) -> SessionUser | None:
        """The user of a live (not revoked, not expired) session."""

    def revoke_session(self, id_hash: str, now_us: int) -> None: ...

    def create_invitation(
        self,
        token_hash: str,
        project_id: int,
        role: str,
        email: str | None,
        created_by: int,
        expires_us: int,
    ) -> None: ...

    def invitation(self, token_hash: str, now_us: int) -> Invitation | None:
        """An invitation that can still be used."""

    def accept_invitation(
        self,
        token_hash: str,
        now_us: int,
        user_id: int | None = None,
        new_user: tuple[str, str] | None = None,
    ) -> int | None:
        """Use an invitation, once, for ``user_id`` or a ``new_user`` (name, password hash)
        made with it; the user's id, or None when it cannot be used. Raises ``NameTaken``."""

    def record_failure(
        self,
        client: str,
        name: str,
        now_us: int,
        keep_us: int,
        limits: tuple[int, int] | None = None,
    ) -> bool:
        """Note a failed login (only under ``limits``: most by name, most from the client
        within ``keep_us``, checked in one statement); those older than ``keep_us`` go.
        True when noted."""

    def count_failures(
        self, client: str, name: str, since_us: int
    ) -> tuple[int, int, int | None, int | None]:
        """Failed logins since ``since_us``: for ``name``, from ``client``, oldest of each."""

    def clear_failures(self, name: str) -> None: ...

    # -- feedback, meta values -------------------------------------------------------------

    def list_feedback(
        self, project_id: int, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Feedback newest first, each with the ``event`` it rates (None until it arrives)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # -- context spans (OTLP steps that are no model call) --------------------------------

    def insert_context(self, project_id: int, rows: Sequence[tuple[Any, ...]]) -> int:
        """Store context spans ``(trace_id, span_id, parent_span_id, name, kind, started_us,
        duration_ms, status, attributes_json)``, each once; how many were new."""

    def chain_context(
        self, project_id: int, chain_id: str, limit: int = 500, since_us: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """The chain's newest ``limit`` context spans from ``since_us`` on, in time order,
        within 8 MiB of attributes (one at least); and how many older ones were left out."""

    # -- OTLP log records held for their span (see _held) ----------------------------------

    def hold_records(self, project_id: int, rows: Sequence[tuple[str, str, int, str]]) -> int:
        """Hold records ``(event_id, record_id, received_us, record_json)``, each once; how
        many were new."""

    def held_records(
        self, project_id: int, event_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """The records held for each of ``event_ids`` that has any, in the order held, as
        ``(record id, record)``."""

    def held_sizes(self, project_id: int, event_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """How many records each of ``event_ids`` holds, and their characters."""

    def forget_held(self, project_id: int, records: Sequence[tuple[str, str]]) -> None:
        """Drop the held ``records`` (``(event id, record id)``), and only those."""

    def expire_held(self, before_us: int) -> int:
        """Drop the records held since before ``before_us``; how many."""

    def existing_event_ids(self, project_id: int, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` the project has stored."""

    # -- delete ----------------------------------------------------------------------------

    def delete_events(
        self, project_id: int, f: EventFilter | None = None, ids: Sequence[str] | None = None
    ) -> int:
        """Delete the events ``f`` selects (only ids in ``ids``, when given) with their
        feedback and their share of stats and indexes; how many went. Every event (no
        filter, no ids): every feedback too, on no event as well."""

    # -- retention -------------------------------------------------------------------------

    def retention_days(self, project_id: int) -> int | None:
        """The project's own retention in days (0: forever); None: the server's setting."""

    def set_retention_days(self, project_id: int, days: int | None) -> None:
        """Set the project's own retention (0: forever); None: the server's setting again."""

    def oldest_event_us(self, project_id: int) -> int | None:
        """When the project's oldest stored event started; None when it has none."""

    def purge_before(self, project_id: int, before_us: int, keep_aggregates: bool = True) -> int:
        """Delete the events started before ``before_us`` (in bounded chunks) with their
        feedback and index rows, and their share of the stats unless ``keep_aggregates``;
        and feedback given before then that no stored event carries the key of."""

    def forget_unused_prompts(self, project_id: int) -> int:
        """Blank the text of plain-call templates no stored event uses (their stats stay)."""

    def drop_expired_partitions(
        self, before_us: Mapping[int, int | None], keep_aggregates: bool = True
    ) -> dict[int, int]:
        """Drop whole time partitions of events no project keeps (``before_us``: every
        project's retention cut-off, None: forever); the events dropped, by project. Before
        ``purge_before``, which deletes the rest. SQLite has no partitions: drops nothing."""

    # -- a logical dump and load (``llmtap migrate-store``) ----------------------------------

    def tables(self) -> list[dict[str, Any]]:
        """The tables a copy moves, parents first: ``{"name", "columns", "key"}``."""

    def count_rows(self, table: str) -> int:
        """How many rows of ``table`` a copy moves."""

    def read_rows(
        self, table: dict[str, Any], after: list[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows of ``table`` whose key is past ``after``, in key order."""

    def copy_progress(self, table: str) -> dict[str, Any] | None:
        """How far a copy into this store got with ``table``: ``{"after", "done"}``."""

    def write_rows(
        self, table: dict[str, Any], rows: list[tuple[Any, ...]], done: bool = False
    ) -> None:
        """Add rows read from another store (those there already skipped) and record the
        copy's progress, in one transaction."""

    def finish_copy(self) -> None:
        """After a copy: new ids start past the ids copied."""

    # -- alerts and budgets (``kind``: rule, budget or channel) -----------------------------

    def alert_items(self, project_id: int, kind: str) -> list[dict[str, Any]]:
        """The project's items of ``kind`` by name: ``{"name", "body", "created_at",
        "updated_at"}``, ``body`` the JSON document as stored."""

    def every_alert_item(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Every project's items of ``kinds``: ``{"project_id", "project", "kind", "name",
        "body"}``."""

    def put_alert_item(
        self, project_id: int, kind: str, name: str, body: dict[str, Any], create: bool = False
    ) -> bool:
        """Store an item; ``create``: only when the name is free (False when taken), else
        replace the one of that name (its state is kept)."""

    def delete_alert_item(self, project_id: int, kind: str, name: str) -> bool:
        """Remove an item with its states and history; False when there is none."""

    def alert_states(self, project_id: int | None = None) -> list[dict[str, Any]]:
        """Each rule's and budget's state per group (of one project, or of all)."""

    def record_alerts(
        self,
        states: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
        outbox: Sequence[dict[str, Any]] = (),
        forget: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Save states, drop the states in ``forget``, add history entries and
        notifications to send (each with its ``project_id``), at once; nothing of a rule or
        budget deleted meanwhile."""

    def claim_notifications(
        self, now_us: int, until_us: int, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Notifications due and claimed by nobody (or by a claim that ran out), now claimed
        by the caller until ``until_us``."""

    def finish_notification(
        self,
        project_id: int,
        notification_id: str,
        state: str,
        attempts: int,
        next_us: int,
        claimed_until_us: int,
        history: dict[str, Any],
    ) -> None:
        """Record an attempt at a claimed notification (``pending``, ``sent`` or ``failed``)
        with its history entry, at once."""

    def alert_history(
        self, project_id: int, kind: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """History entries (state changes, notification attempts), newest first."""

    def take_lease(self, name: str, holder: str, now_us: int, ttl_us: int) -> bool:
        """Hold the lease ``name`` until ``now_us + ttl_us``; False while another holder's
        has not expired."""

    def drop_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` has it."""

    # -- boards and their share links --------------------------------------------------------

    def list_boards(self, project_id: int) -> list[dict[str, Any]]:
        """The project's boards (no specs), by name."""

    def list_board_templates(self) -> list[dict[str, Any]]:
        """Boards marked as templates, of every project, with their specs and ``project``."""

    def board(self, project_id: int, board_id: str) -> dict[str, Any] | None:
        """One board with its ``spec``; None when the project has no such board."""

    def create_board(
        self,
        project_id: int,
        board_id: str,
        name: str,
        spec: dict[str, Any],
        owner: str | None,
        is_template: bool = False,
    ) -> bool:
        """A new board, its version 1 saved; False when ``board_id`` is taken."""

    def update_board(
        self,
        project_id: int,
        board_id: str,
        name: str,
        spec: dict[str, Any],
        is_template: bool,
        saved_by: str | None,
    ) -> int | None:
        """Save a board as a new version (its number; versions past the newest
        ``VERSIONS_KEPT`` are forgotten); None when there is no such board."""

    def board_versions(self, project_id: int, board_id: str) -> list[dict[str, Any]]:
        """A board's versions, newest first, without their specs."""

    def board_version(
        self, project_id: int, board_id: str, version: int
    ) -> dict[str, Any] | None: ...

    def delete_board(self, project_id: int, board_id: str) -> bool:
        """Remove a board, its versions and its links; False when there is none."""

    def create_share(
        self,
        project_id: int,
        share_id: str,
        board_id: str,
        token_hash: str,
        created_by: str | None,
        expires_us: int | None,
        allow_bodies: bool,
    ) -> bool:
        """A read-only link to a board, stored by its token's hash; False when the board has
        its most live links already (the oldest dead ones are forgotten)."""

    def share_by_hash(self, token_hash: str, now_us: int) -> dict[str, Any] | None:
        """The live link with this hash (``project_id``, ``board_id``...), its use noted."""

    def list_shares(self, project_id: int) -> list[dict[str, Any]]:
        """The project's links with their board's name, revoked ones included."""

    def revoke_share(self, project_id: int, share_id: str) -> bool: ...

    def attribute_keys(self, project_id: int) -> list[dict[str, Any]]:
        """The attribute keys seen in the project, each with its number of distinct values."""

    # -- prompt tests (issue 15): test sets, cases, runs, results --------------------------

    def create_testset(self, project_id: int, name: str, evaluators: list[str]) -> int:
        """A new, empty test set; its id. Raises ``NameTaken`` when the name is used."""

    def list_testsets(self, project_id: int) -> list[dict[str, Any]]:
        """The project's test sets, newest first, each with its ``case_count``."""

    def get_testset(self, project_id: int, testset_id: int) -> dict[str, Any] | None:
        """A test set with its ``cases``; None when the project has no such set."""

    def delete_testset(self, project_id: int, testset_id: int) -> bool:
        """Remove a set with its cases, runs and results; False when there is none."""

    def add_cases(
        self, project_id: int, testset_id: int, cases: Sequence[dict[str, Any]]
    ) -> list[int]:
        """Add cases to a set (its next version); the indexes of those refused because the
        set has a case of their ``event_id`` already."""

    def update_case(
        self,
        project_id: int,
        case_id: int,
        expected: str | None,
        expected_kind: str,
        tags: list[str],
    ) -> bool:
        """Change a case's expected output and tags; False when there is no such case."""

    def delete_case(self, project_id: int, case_id: int) -> bool:
        """Remove a case with its results; False when there is no such case."""

    def create_run(
        self, project_id: int, run_id: str, testset_id: int, config: dict[str, Any]
    ) -> bool:
        """Start a run of a set (at its current version); False when there is no such set or
        the id is taken."""

    def list_runs(self, project_id: int, testset_id: int | None = None) -> list[dict[str, Any]]:
        """Runs (of one set, when given), newest first, without their results."""

    def get_run(self, project_id: int, run_id: str) -> dict[str, Any] | None:
        """A run with its ``results``; None when the project has no such run."""

    def run_case_ids(self, project_id: int, run_id: str) -> set[int] | None:
        """The ids of the cases of a run's set; None when the project has no such run."""

    def add_results(self, project_id: int, run_id: str, results: Sequence[dict[str, Any]]) -> int:
        """Store per-case results of a run; a case's first result stays. How many were new."""

    def finish_run(
        self, project_id: int, run_id: str, status: str, summary: dict[str, Any] | None
    ) -> bool:
        """Set a run's status and summary; False when there is no such run."""


def is_url(db: str) -> bool:
    """Whether ``db`` names a PostgreSQL server (else it is a SQLite file's path)."""
    return db.startswith(("postgres://", "postgresql://"))


def open_store(db: str, read_db: str | None = None) -> Store:
    """The store at ``db``, migrated to the newest schema: a SQLite file path (created if
    missing), or a ``postgresql://`` (``postgres://``) URL (needs the ``postgres`` extra:
    ``pip install 'llmtap[server,postgres]'``). Raises ``StoreUnavailable`` when the
    PostgreSQL server cannot be reached, or the SQLite file cannot be opened (it is no
    database, a folder, in a folder that cannot be made).

    ``read_db``: the URL of a streaming replica of a PostgreSQL ``db`` that the queries
    (events, stats, templates, exports) read from; every write, and the reads that must be
    current, stay on ``db`` (``docs/scaling.md``). Raises ``ValueError`` with a SQLite
    ``db`` or a ``read_db`` that is no PostgreSQL URL."""
    if read_db:
        if not is_url(db):
            raise ValueError(
                "--read-db (LLMTAP_READ_DB) needs a PostgreSQL store: --db is a SQLite file,"
                " whose readers read the file itself (no replica to point at)"
            )
        if not is_url(read_db):
            raise ValueError(
                "--read-db (LLMTAP_READ_DB) must be a postgresql:// URL of a replica of --db"
            )
    if is_url(db):
        try:
            from ._postgres import PostgresStore
        except ImportError as e:
            raise StoreUnavailable(
                f"a PostgreSQL store needs psycopg: pip install 'llmtap[server,postgres]' ({e})"
            ) from None
        # Its portable methods are adopted from SQLiteStore when the module loads (see
        # _postgres): the contract test checks them, a type checker cannot see them.
        return cast(Store, PostgresStore(db, read_url=read_db or None))
    try:
        return SQLiteStore(db)
    except (sqlite3.DatabaseError, OSError) as e:  # not a database, a folder, no such place
        raise StoreUnavailable(f"cannot open the SQLite store {db}: {e}") from None


def describe_db(db: str) -> str:
    """``db`` as it may be printed or logged: a URL's password masked."""
    return mask_url(db) if is_url(db) else db
