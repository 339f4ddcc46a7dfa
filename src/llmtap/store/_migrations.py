"""Schema migrations: append-only named steps, recorded in ``_llmtap_migrations`` and applied
in order when a store opens. Never edit a step that has shipped; add the next one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["SQLITE_MIGRATIONS", "migrate_sqlite"]

Step = tuple[str, tuple[str, ...]]

SQLITE_MIGRATIONS: list[Step] = [
    (
        "m001_initial",
        (
            """CREATE TABLE projects (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE api_keys (
                id INTEGER PRIMARY KEY,
                project_id INTEGER NOT NULL REFERENCES projects(id),
                environment TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT
            )""",
            # One row per event. The columns are what queries filter, sort and group on; body is
            # the whole event as JSON, what the API answers with.
            """CREATE TABLE events (
                seq INTEGER PRIMARY KEY,
                id TEXT NOT NULL,
                project_id INTEGER NOT NULL REFERENCES projects(id),
                environment TEXT NOT NULL,
                api TEXT NOT NULL,
                provider TEXT,
                model TEXT,
                status TEXT NOT NULL,
                started_us INTEGER NOT NULL,
                latency_ms REAL,
                ttft_ms REAL,
                input_tokens INTEGER,
                output_tokens INTEGER,
                total_tokens INTEGER,
                cost_usd REAL,
                prompt_template_name TEXT,
                template_revision TEXT,
                chat_id TEXT,
                chain_id TEXT,
                parent_event_id TEXT,
                feedback_key TEXT,
                received_us INTEGER NOT NULL,
                body TEXT NOT NULL,
                UNIQUE (project_id, id)
            )""",
            "CREATE INDEX events_by_time ON events (project_id, started_us, seq)",
            "CREATE INDEX events_by_model ON events (project_id, model, started_us)",
            "CREATE INDEX events_by_template ON events"
            " (project_id, prompt_template_name, started_us)",
            "CREATE INDEX events_by_chat ON events (project_id, chat_id) WHERE chat_id IS NOT NULL",
            "CREATE INDEX events_by_chain ON events (project_id, chain_id)"
            " WHERE chain_id IS NOT NULL",
            "CREATE INDEX events_by_feedback_key ON events (project_id, feedback_key)",
            """CREATE TABLE feedback (
                id INTEGER PRIMARY KEY,
                project_id INTEGER NOT NULL REFERENCES projects(id),
                feedback_key TEXT NOT NULL,
                rating REAL,
                better_response TEXT,
                created_us INTEGER NOT NULL
            )""",
            "CREATE INDEX feedback_by_key ON feedback (project_id, feedback_key)",
        ),
    ),
    (
        "m002_meta",
        (
            # Server-wide values: the admin token's hash, and what is derived from it.
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE INDEX feedback_by_time ON feedback (project_id, created_us)",
        ),
    ),
]


def migrate_sqlite(
    conn: sqlite3.Connection,
    steps: list[Step] = SQLITE_MIGRATIONS,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> list[str]:
    """Apply the steps ``conn`` has not seen, each in its own transaction; return their names.

    ``conn`` must be in autocommit mode (``isolation_level=None``)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _llmtap_migrations"
        " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT name FROM _llmtap_migrations")}
    done = []
    for name, statements in steps:
        if name in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if conn.execute("SELECT 1 FROM _llmtap_migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO _llmtap_migrations (name, applied_at) VALUES (?, ?)",
                (name, now().isoformat()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done
