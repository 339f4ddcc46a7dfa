"""Schema migrations: append-only named steps, recorded in ``_llmtap_migrations`` and applied
in order when a store opens. Never edit a step that has shipped; add the next one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from . import _derive, _measures, _repair

__all__ = ["SQLITE_MIGRATIONS", "apply_step", "migrate_sqlite"]

# A step is SQL statements, or Python functions run on the connection (for data that SQL alone
# cannot derive), in order, in one transaction.
Step = tuple[str, tuple["str | Callable[[sqlite3.Connection], None]", ...]]

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
        "m002_stats_prices_search",
        (
            # Sorting the events list by latency or cost (NULLs sort lowest), with seq as the
            # tie-breaker the cursor needs.
            "CREATE INDEX events_by_latency ON events (project_id, ifnull(latency_ms, -1), seq)",
            "CREATE INDEX events_by_cost ON events (project_id, ifnull(cost_usd, -1), seq)",
            # Every attribute of every event, as text (see _derive.attribute_text).
            """CREATE TABLE event_attrs (
                project_id INTEGER NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                seq INTEGER NOT NULL,
                PRIMARY KEY (project_id, key, value, seq)
            ) WITHOUT ROWID""",
            "CREATE INDEX event_attrs_by_seq ON event_attrs (seq)",
            # Prompts and outputs for q=; contentless: the text is in events.body already.
            "CREATE VIRTUAL TABLE events_text USING fts5"
            "(text, content='', tokenize='unicode61 remove_diacritics 2')",
            # The stats aggregates (see _derive): dimension combinations, attribute values,
            # and one row per project, level, attribute value, time bucket and combination.
            """CREATE TABLE agg_dims (
                id INTEGER PRIMARY KEY,
                project_id INTEGER NOT NULL,
                environment TEXT NOT NULL,
                model TEXT NOT NULL,
                prompt_template_name TEXT NOT NULL,
                template_revision TEXT NOT NULL,
                status TEXT NOT NULL,
                UNIQUE (project_id, environment, model, prompt_template_name,
                        template_revision, status)
            )""",
            """CREATE TABLE attr_keys (
                project_id INTEGER NOT NULL,
                key TEXT NOT NULL,
                n_values INTEGER NOT NULL,
                overflow INTEGER NOT NULL,
                PRIMARY KEY (project_id, key)
            )""",
            """CREATE TABLE attr_values (
                id INTEGER PRIMARY KEY,
                project_id INTEGER NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                UNIQUE (project_id, key, value)
            )""",
            """CREATE TABLE agg (
                project_id INTEGER NOT NULL,
                level INTEGER NOT NULL,
                attr_id INTEGER NOT NULL,
                bucket INTEGER NOT NULL,
                dims_id INTEGER NOT NULL,
                n INTEGER NOT NULL,
                errors INTEGER NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cost REAL NOT NULL,
                priced INTEGER NOT NULL,
                lat BLOB,
                ttft BLOB,
                rating_sum REAL NOT NULL,
                rating_n INTEGER NOT NULL,
                PRIMARY KEY (project_id, level, attr_id, bucket, dims_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE templates (
                project_id INTEGER NOT NULL,
                name TEXT NOT NULL,
                revision TEXT NOT NULL,
                kind TEXT NOT NULL,
                template TEXT NOT NULL,
                first_us INTEGER NOT NULL,
                last_us INTEGER NOT NULL,
                PRIMARY KEY (project_id, name, revision)
            )""",
            # A project's own prices (a fine-tune, a negotiated rate), from since_us on.
            """CREATE TABLE price_overrides (
                project_id INTEGER NOT NULL,
                model TEXT NOT NULL,
                since_us INTEGER NOT NULL,
                input_per_mtok REAL NOT NULL,
                output_per_mtok REAL NOT NULL,
                cached_per_mtok REAL,
                reasoning_per_mtok REAL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (project_id, model, since_us)
            )""",
            # Events with usage whose model has no price, by model.
            """CREATE TABLE unpriced (
                project_id INTEGER NOT NULL,
                model TEXT NOT NULL,
                events INTEGER NOT NULL,
                PRIMARY KEY (project_id, model)
            )""",
            _derive.backfill,
        ),
    ),
    (
        "m003_meta",
        (
            # Server-wide values: the admin token's hash, and what is derived from it.
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE INDEX feedback_by_time ON feedback (project_id, created_us)",
        ),
    ),
    (
        "m004_timeline_indexes",
        (
            # A chat's or chain's events in time order straight from one index: with only
            # (project_id, chat_id) the planner preferred walking the time index, a million
            # rows for the twenty of one chat.
            "DROP INDEX events_by_chat",
            "DROP INDEX events_by_chain",
            "CREATE INDEX events_by_chat ON events (project_id, chat_id, started_us, seq)"
            " WHERE chat_id IS NOT NULL",
            "CREATE INDEX events_by_chain ON events (project_id, chain_id, started_us, seq)"
            " WHERE chain_id IS NOT NULL",
        ),
    ),
    (
        "m005_feedback_id",
        (
            # The id the SDK gives each feedback, so that a retried one is stored once.
            "ALTER TABLE feedback ADD COLUMN feedback_id TEXT",
            "CREATE UNIQUE INDEX feedback_by_id ON feedback (project_id, feedback_id)"
            " WHERE feedback_id IS NOT NULL",
        ),
    ),
    (
        "m006_derived_seq",
        (
            # Derivation trails the events (see _derive): how far it went. Every event stored
            # before this migration was derived in its own transaction.
            "INSERT INTO meta (key, value)"
            " SELECT 'derived_seq', CAST(ifnull(max(seq), 0) AS TEXT) FROM events",
        ),
    ),
    (
        "m007_key_scopes",
        (
            # What a key may do, space-separated. Keys made before scopes could do everything
            # (send, read, set prices): they keep that; new keys only ingest unless told.
            "ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'ingest read admin'",
            "ALTER TABLE api_keys ADD COLUMN env_only INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    (
        "m008_users",
        (
            # People who use the dashboard (API keys are for programs). The owner (the first
            # admin) manages every project; the others see only the projects they have a role
            # in. A removed user's sessions and roles go with them.
            """CREATE TABLE users (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                password_hash TEXT NOT NULL,
                is_owner INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE memberships (
                user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                project_id INTEGER NOT NULL REFERENCES projects(id),
                role TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
                PRIMARY KEY (user_id, project_id)
            )""",
            # Only hashes of the one-time tokens and session ids: a copy of the database
            # opens no link and no session.
            """CREATE TABLE invitations (
                id INTEGER PRIMARY KEY,
                token_hash TEXT NOT NULL UNIQUE,
                project_id INTEGER NOT NULL REFERENCES projects(id),
                role TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
                email TEXT,
                created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
                created_at TEXT NOT NULL,
                expires_us INTEGER NOT NULL,
                used_at TEXT,
                used_by INTEGER REFERENCES users(id) ON DELETE SET NULL
            )""",
            """CREATE TABLE sessions (
                id_hash TEXT PRIMARY KEY,
                user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                csrf_token TEXT NOT NULL,
                created_us INTEGER NOT NULL,
                expires_us INTEGER NOT NULL,
                revoked_us INTEGER
            )""",
            "CREATE INDEX sessions_by_user ON sessions (user_id)",
            # Failed logins, for throttling: in the database so that every worker process
            # counts the same failures.
            """CREATE TABLE login_failures (
                id INTEGER PRIMARY KEY,
                at_us INTEGER NOT NULL,
                client TEXT NOT NULL,
                name TEXT NOT NULL
            )""",
            "CREATE INDEX login_failures_by_name ON login_failures (name, at_us)",
            "CREATE INDEX login_failures_by_client ON login_failures (client, at_us)",
        ),
    ),
    (
        "m009_repair_bounds",
        (
            # Values stored before the wire's bounds that no read can show (see _repair).
            _repair.repair_bounds,
        ),
    ),
    (
        "m010_context_spans",
        (
            # A trace's steps that are no model call (see _context); by chain, in time order.
            """CREATE TABLE context_spans (
                project_id INTEGER NOT NULL REFERENCES projects(id),
                trace_id TEXT NOT NULL,
                span_id TEXT NOT NULL,
                parent_span_id TEXT,
                name TEXT NOT NULL,
                kind TEXT NOT NULL,
                started_us INTEGER NOT NULL,
                duration_ms REAL,
                status TEXT NOT NULL,
                attributes TEXT NOT NULL,
                PRIMARY KEY (project_id, trace_id, span_id)
            )""",
            "CREATE INDEX context_spans_by_time ON context_spans"
            " (project_id, trace_id, started_us)",
        ),
    ),
    (
        "m011_alerts",
        (
            # Rules, budgets and notification channels: one JSON document each, by name.
            """CREATE TABLE alert_items (
                project_id INTEGER NOT NULL REFERENCES projects(id),
                kind TEXT NOT NULL CHECK (kind IN ('rule', 'budget', 'channel')),
                name TEXT NOT NULL,
                body TEXT NOT NULL,
                created_us INTEGER NOT NULL,
                updated_us INTEGER NOT NULL,
                PRIMARY KEY (project_id, kind, name)
            )""",
            # One row per rule (or budget) and group (its key as JSON, '{}' without a
            # group-by): ok, firing or resolved, since when, the last value.
            """CREATE TABLE alert_states (
                project_id INTEGER NOT NULL,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                group_key TEXT NOT NULL,
                state TEXT NOT NULL,
                value REAL,
                threshold REAL,
                events INTEGER,
                since_us INTEGER NOT NULL,
                evaluated_us INTEGER NOT NULL,
                extra TEXT NOT NULL,
                PRIMARY KEY (project_id, kind, name, group_key)
            )""",
            # State changes and every notification attempt, per rule.
            """CREATE TABLE alert_history (
                id INTEGER PRIMARY KEY,
                project_id INTEGER NOT NULL,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                group_key TEXT NOT NULL,
                at_us INTEGER NOT NULL,
                event TEXT NOT NULL,
                detail TEXT NOT NULL
            )""",
            "CREATE UNIQUE INDEX alert_history_by_rule"
            " ON alert_history (project_id, kind, name, at_us, id)",
            # Who evaluates (one process at a time) and until when (project 0: all).
            """CREATE TABLE alert_lease (
                project_id INTEGER NOT NULL,
                name TEXT NOT NULL,
                holder TEXT NOT NULL,
                expires_us INTEGER NOT NULL,
                PRIMARY KEY (project_id, name)
            )""",
        ),
    ),
    (
        "m012_boards",
        (
            # A board: a named grid of panels of one project, its spec a JSON document (parsed
            # and checked in Python, see server/boards/spec.py). Ids are random text made by
            # the server, so a new board needs no id back from the database.
            """CREATE TABLE boards (
                project_id INTEGER NOT NULL REFERENCES projects(id),
                id TEXT NOT NULL,
                name TEXT NOT NULL,
                spec TEXT NOT NULL,
                owner TEXT,
                is_template INTEGER NOT NULL DEFAULT 0,
                version INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (project_id, id)
            )""",
            "CREATE INDEX boards_templates ON boards (is_template, project_id)",
            # Every save appends one; a restore is a save of an old one.
            """CREATE TABLE board_versions (
                project_id INTEGER NOT NULL,
                board_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                name TEXT NOT NULL,
                spec TEXT NOT NULL,
                saved_by TEXT,
                saved_at TEXT NOT NULL,
                PRIMARY KEY (project_id, board_id, version)
            )""",
            # Read-only links: only the token's hash, so a copy of the database opens none.
            # A token is 192 random bits: its hash is unique without a global unique index
            # (every unique index of a project's table holds project_id, for sharding).
            """CREATE TABLE board_shares (
                project_id INTEGER NOT NULL,
                id TEXT NOT NULL,
                board_id TEXT NOT NULL,
                token_hash TEXT NOT NULL,
                created_by TEXT,
                created_at TEXT NOT NULL,
                expires_us INTEGER,
                revoked_at TEXT,
                last_used_at TEXT,
                allow_bodies INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (project_id, id)
            )""",
            "CREATE INDEX board_shares_by_token ON board_shares (token_hash)",
        ),
    ),
    (
        "m013_testsets",
        (
            # Prompt tests (issue 15): sets of cases made from events, runs of a set against a
            # template revision or model, and each case's result in a run. JSON documents are
            # TEXT, parsed in Python, so the PostgreSQL store keeps the same SQL.
            """CREATE TABLE testsets (
                id INTEGER PRIMARY KEY,
                project_id INTEGER NOT NULL REFERENCES projects(id),
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                evaluators TEXT NOT NULL,
                created_us INTEGER NOT NULL,
                updated_us INTEGER NOT NULL,
                UNIQUE (project_id, name),
                UNIQUE (project_id, id)
            )""",
            # One production call is a case once per set: event_id is unique in its set (cases
            # imported without an event id are not compared).
            """CREATE TABLE testcases (
                id INTEGER PRIMARY KEY,
                project_id INTEGER NOT NULL REFERENCES projects(id),
                testset_id INTEGER NOT NULL,
                event_id TEXT,
                data TEXT NOT NULL,
                original_output TEXT,
                expected TEXT,
                expected_kind TEXT NOT NULL,
                tags TEXT NOT NULL,
                created_us INTEGER NOT NULL,
                UNIQUE (project_id, testset_id, event_id),
                UNIQUE (project_id, id)
            )""",
            """CREATE TABLE testruns (
                project_id INTEGER NOT NULL REFERENCES projects(id),
                id TEXT NOT NULL,
                testset_id INTEGER NOT NULL,
                testset_version INTEGER NOT NULL,
                config TEXT NOT NULL,
                status TEXT NOT NULL,
                summary TEXT,
                created_us INTEGER NOT NULL,
                finished_us INTEGER,
                PRIMARY KEY (project_id, id)
            )""",
            "CREATE INDEX testruns_by_set ON testruns (project_id, testset_id, created_us)",
            # A result per run and case, never two: a resumed run skips what is stored.
            """CREATE TABLE testresults (
                project_id INTEGER NOT NULL REFERENCES projects(id),
                run_id TEXT NOT NULL,
                case_id INTEGER NOT NULL,
                scores TEXT NOT NULL,
                output TEXT,
                passed INTEGER,
                baseline_passed INTEGER,
                cost_usd REAL,
                latency_ms REAL,
                error TEXT,
                event_id TEXT,
                created_us INTEGER NOT NULL,
                PRIMARY KEY (project_id, run_id, case_id)
            )""",
            "CREATE INDEX testresults_by_case ON testresults (project_id, case_id)",
        ),
    ),
    (
        # What sent each event (llmtap's SDK, or an OpenTelemetry instrumentation's scope), as
        # a column the events list filters by and the stats group by; read back from the
        # stored bodies of the events already kept.
        "m014_event_sdk",
        (
            "ALTER TABLE events ADD COLUMN sdk TEXT",
            "UPDATE events SET sdk = json_extract(body, '$.sdk.name')",
        ),
    ),
    (
        "m015_testcases_by_event",
        (
            # Deleting events deletes the cases copied from them (a user's erasure reaches the
            # copies): each delete chunk finds its events' cases by this index.
            "CREATE INDEX testcases_by_event ON testcases (project_id, event_id)",
        ),
    ),
    (
        "m016_agg_measures",
        (
            # Boards' cached and reasoning tokens, alerts' share of low ratings (issues 14,
            # 16): three sums more per aggregate row, filled from the events derived so far.
            _derive.add_measure_columns,
            _measures.backfill_sqlite,
        ),
    ),
    (
        "m017_alert_outbox",
        (
            # Notifications to send (issue 16), written with the state change that makes
            # them, so a process that dies before sending leaves them for the next (see
            # server/alerts/notify.py): one row per notification and channel.
            """CREATE TABLE alert_outbox (
                project_id INTEGER NOT NULL,
                id TEXT NOT NULL,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                channel TEXT NOT NULL,
                note TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_us INTEGER NOT NULL,
                claimed_until_us INTEGER NOT NULL,
                created_us INTEGER NOT NULL,
                done_us INTEGER,
                PRIMARY KEY (project_id, id)
            )""",
            "CREATE INDEX alert_outbox_due ON alert_outbox (state, next_us)",
        ),
    ),
    (
        "m018_otlp_held",
        (
            # OTLP log records waiting for their span (see _held): by event, and by age for
            # the expiry of those whose span never comes.
            """CREATE TABLE otlp_held (
                project_id INTEGER NOT NULL,
                event_id TEXT NOT NULL,
                record_id TEXT NOT NULL,
                received_us INTEGER NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (project_id, event_id, record_id)
            )""",
            "CREATE INDEX otlp_held_by_age ON otlp_held (received_us)",
        ),
    ),
    (
        "m019_long_attribute_values",
        (
            # An attribute's values over 200 characters had been left out of the aggregates
            # without a word: their key is marked overflowing (stats by it read the events).
            "INSERT INTO attr_keys (project_id, key, n_values, overflow)"
            " SELECT DISTINCT project_id, key, 0, 1 FROM event_attrs WHERE length(value) > 200"
            " ON CONFLICT (project_id, key) DO UPDATE SET overflow = 1",
        ),
    ),
    (
        "m020_plain_call_templates",
        (
            # A plain call's prompt, filed as a template of its own under a name it was given:
            # blanked by retention once no call of it is kept, as an unnamed one's (see
            # _retention.forget_unused_prompts). Rows from before cannot tell: 0.
            "ALTER TABLE templates ADD COLUMN plain INTEGER NOT NULL DEFAULT 0",
        ),
    ),
]


def apply_step(
    conn: Any, name: str, statements: tuple[Any, ...], now: Callable[[], datetime]
) -> None:
    """Run a step's statements (SQL, or functions of the connection) and record it, in the
    caller's transaction (either backend's)."""
    for statement in statements:
        if callable(statement):
            statement(conn)
        else:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO _llmtap_migrations (name, applied_at) VALUES (?, ?)",
        (name, now().isoformat()),
    )


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
            apply_step(conn, name, statements, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done
