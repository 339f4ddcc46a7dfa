"""Prompt tests: test sets (named, versioned, per project), their cases, runs and per-case
results.

Plain functions on a store, made its methods in ``_sqlite``. Written in the SQL both backends
speak (``?`` placeholders, ``ON CONFLICT``, no SQLite-only functions): the PostgreSQL store runs
this module unchanged. JSON documents are TEXT, parsed here.

A case's ``event_id`` is unique in its set (the same production call is not a case twice);
a result is unique per run and case, so a resumed run never stores (or bills) a case twice.

A case is a copy of its event (parameters, output, feedback): when the event is deleted (the
API, the dashboard, retention), the copies go with it, in the same transaction
(``forget_cases``, called by ``_delete.forget``), with their results in every run, and each
set they were in becomes a new version. A case imported without an event id stays.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._common import NameTaken
from ._sql import chunks, marks

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "add_cases",
    "add_results",
    "create_run",
    "create_testset",
    "delete_case",
    "delete_testset",
    "finish_run",
    "forget_cases",
    "get_run",
    "get_testset",
    "list_runs",
    "list_testsets",
    "run_case_ids",
    "update_case",
]

# What a case keeps of its call, beside the columns: template, parameters, model, settings.
CASE_DATA = (
    "prompt_template_name",
    "template_revision",
    "template",
    "template_params",
    "input",
    "model",
    "settings",
    "rating",
    "original_latency_ms",
    "original_cost_usd",
)
_RESULT_COLUMNS = (
    "output",
    "passed",
    "baseline_passed",
    "cost_usd",
    "latency_ms",
    "error",
    "event_id",
)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _iso(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _bump(testset_id: int, project_id: int) -> tuple[str, Sequence[Any]]:
    """The statement that makes a change of cases a new version of the set."""
    return (
        "UPDATE testsets SET version = version + 1, updated_us = ? WHERE project_id = ? AND id = ?",
        (_now_us(), project_id, testset_id),
    )


def create_testset(store: SQLiteStore, project_id: int, name: str, evaluators: list[str]) -> int:
    """A new, empty test set; its id. Raises ``NameTaken`` when the project has one so named."""
    now = _now_us()
    (cur,) = store._write(
        [
            (
                "INSERT INTO testsets (project_id, name, version, evaluators, created_us,"
                " updated_us) VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (project_id, name) DO NOTHING",
                (project_id, name, _dumps(evaluators), now, now),
            )
        ]
    )
    if cur.rowcount != 1:
        raise NameTaken(f"the project has a test set named {name!r} already")
    row = (
        store._reader()
        .execute("SELECT id FROM testsets WHERE project_id = ? AND name = ?", (project_id, name))
        .fetchone()
    )
    return int(row[0])


_SET_COLUMNS = "id, name, version, evaluators, created_us, updated_us"


def _testset(row: Sequence[Any], cases: int) -> dict[str, Any]:
    sid, name, version, evaluators, created, updated = row
    return {
        "id": sid,
        "name": name,
        "version": version,
        "evaluators": json.loads(evaluators),
        "case_count": cases,
        "created_at": _iso(created),
        "updated_at": _iso(updated),
    }


def list_testsets(store: SQLiteStore, project_id: int) -> list[dict[str, Any]]:
    """The project's test sets, newest first, each with its count of cases."""
    conn = store._reader()
    counts = dict(
        conn.execute(
            "SELECT testset_id, COUNT(*) FROM testcases WHERE project_id = ? GROUP BY testset_id",
            (project_id,),
        ).fetchall()
    )
    rows = conn.execute(
        f"SELECT {_SET_COLUMNS} FROM testsets WHERE project_id = ? ORDER BY id DESC",
        (project_id,),
    ).fetchall()
    return [_testset(row, counts.get(row[0], 0)) for row in rows]


def _case(row: Sequence[Any]) -> dict[str, Any]:
    cid, event_id, data, original, expected, kind, tags, created = row
    return {
        "id": cid,
        "event_id": event_id,
        **json.loads(data),
        "original_output": original,
        "expected": expected,
        "expected_kind": kind,
        "tags": json.loads(tags),
        "created_at": _iso(created),
    }


def get_testset(store: SQLiteStore, project_id: int, testset_id: int) -> dict[str, Any] | None:
    """A test set with its ``cases`` (oldest first); None when the project has none so."""
    conn = store._reader()
    row = conn.execute(
        f"SELECT {_SET_COLUMNS} FROM testsets WHERE project_id = ? AND id = ?",
        (project_id, testset_id),
    ).fetchone()
    if row is None:
        return None
    cases = [
        _case(r)
        for r in conn.execute(
            "SELECT id, event_id, data, original_output, expected, expected_kind, tags,"
            " created_us FROM testcases WHERE project_id = ? AND testset_id = ? ORDER BY id",
            (project_id, testset_id),
        )
    ]
    return {**_testset(row, len(cases)), "cases": cases}


def delete_testset(store: SQLiteStore, project_id: int, testset_id: int) -> bool:
    """Remove a test set with its cases, runs and results; False when there is none."""
    where = "WHERE project_id = ? AND testset_id = ?"
    runs = f"SELECT id FROM testruns {where}"
    *_, cur = store._write(
        [
            (
                f"DELETE FROM testresults WHERE project_id = ? AND run_id IN ({runs})",
                (project_id, project_id, testset_id),
            ),
            (f"DELETE FROM testruns {where}", (project_id, testset_id)),
            (f"DELETE FROM testcases {where}", (project_id, testset_id)),
            ("DELETE FROM testsets WHERE project_id = ? AND id = ?", (project_id, testset_id)),
        ]
    )
    return bool(cur.rowcount == 1)


def add_cases(
    store: SQLiteStore, project_id: int, testset_id: int, cases: Sequence[dict[str, Any]]
) -> list[int]:
    """Add ``cases`` (see ``CASE_DATA``, and ``event_id``, ``original_output``, ``expected``,
    ``expected_kind``, ``tags``) to a set, as its next version; the indexes of those refused
    because the set has a case of their event already."""
    now = _now_us()
    statements: list[tuple[str, Sequence[Any]]] = [
        (
            "INSERT INTO testcases (project_id, testset_id, event_id, data, original_output,"
            " expected, expected_kind, tags, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, testset_id, event_id) DO NOTHING",
            (
                project_id,
                testset_id,
                case.get("event_id"),
                _dumps({k: case.get(k) for k in CASE_DATA}),
                case.get("original_output"),
                case.get("expected"),
                case.get("expected_kind") or "none",
                _dumps(list(case.get("tags") or [])),
                now,
            ),
        )
        for case in cases
    ]
    cursors = store._write([*statements, _bump(testset_id, project_id)])
    return [i for i, cur in enumerate(cursors[:-1]) if cur.rowcount != 1]


def forget_cases(conn: Any, project_id: int, event_ids: Sequence[str]) -> int:
    """Delete the cases copied from events ``event_ids`` with their results, each set that
    had one a new version, in ``conn``'s transaction; how many cases went."""
    gone = 0
    now = _now_us()
    for chunk in chunks(sorted(set(event_ids))):
        rows = conn.execute(
            "SELECT id, testset_id FROM testcases WHERE project_id = ?"
            f" AND event_id IN ({marks(chunk)})",
            (project_id, *chunk),
        ).fetchall()
        if not rows:
            continue
        cases = [row[0] for row in rows]
        sets = sorted({row[1] for row in rows})
        conn.execute(
            f"DELETE FROM testresults WHERE project_id = ? AND case_id IN ({marks(cases)})",
            (project_id, *cases),
        )
        conn.execute(
            f"DELETE FROM testcases WHERE project_id = ? AND id IN ({marks(cases)})",
            (project_id, *cases),
        )
        conn.execute(
            "UPDATE testsets SET version = version + 1, updated_us = ?"
            f" WHERE project_id = ? AND id IN ({marks(sets)})",
            (now, project_id, *sets),
        )
        gone += len(cases)
    return gone


def _testset_of(store: SQLiteStore, project_id: int, case_id: int) -> int | None:
    """The set a case is in; None when the project has no such case."""
    row = (
        store._reader()
        .execute(
            "SELECT testset_id FROM testcases WHERE project_id = ? AND id = ?",
            (project_id, case_id),
        )
        .fetchone()
    )
    return None if row is None else int(row[0])


def update_case(
    store: SQLiteStore,
    project_id: int,
    case_id: int,
    expected: str | None,
    expected_kind: str,
    tags: list[str],
) -> bool:
    """Change a case's expected output and tags; False when the project has no such case."""
    testset_id = _testset_of(store, project_id, case_id)
    if testset_id is None:
        return False
    cur, _ = store._write(
        [
            (
                "UPDATE testcases SET expected = ?, expected_kind = ?, tags = ?"
                " WHERE project_id = ? AND id = ?",
                (expected, expected_kind, _dumps(tags), project_id, case_id),
            ),
            _bump(testset_id, project_id),
        ]
    )
    return bool(cur.rowcount == 1)


def delete_case(store: SQLiteStore, project_id: int, case_id: int) -> bool:
    """Remove a case with its results; False when the project has no such case."""
    testset_id = _testset_of(store, project_id, case_id)
    if testset_id is None:
        return False
    _, cur, _ = store._write(
        [
            (
                "DELETE FROM testresults WHERE project_id = ? AND case_id = ?",
                (project_id, case_id),
            ),
            ("DELETE FROM testcases WHERE project_id = ? AND id = ?", (project_id, case_id)),
            _bump(testset_id, project_id),
        ]
    )
    return bool(cur.rowcount == 1)


def create_run(
    store: SQLiteStore, project_id: int, run_id: str, testset_id: int, config: dict[str, Any]
) -> bool:
    """Start run ``run_id`` of a set at its current version; False when the project has no
    such set or already has a run with this id."""
    row = (
        store._reader()
        .execute(
            "SELECT version FROM testsets WHERE project_id = ? AND id = ?",
            (project_id, testset_id),
        )
        .fetchone()
    )
    if row is None:
        return False
    (cur,) = store._write(
        [
            (
                "INSERT INTO testruns (project_id, id, testset_id, testset_version, config,"
                " status, created_us) VALUES (?, ?, ?, ?, ?, 'running', ?)"
                " ON CONFLICT (project_id, id) DO NOTHING",
                (project_id, run_id, testset_id, row[0], _dumps(config), _now_us()),
            )
        ]
    )
    return bool(cur.rowcount == 1)


_RUN_COLUMNS = "id, testset_id, testset_version, config, status, summary, created_us, finished_us"


def _run(row: Sequence[Any]) -> dict[str, Any]:
    rid, sid, version, config, status, summary, created, finished = row
    return {
        "id": rid,
        "testset_id": sid,
        "testset_version": version,
        "config": json.loads(config),
        "status": status,
        "summary": json.loads(summary) if summary else None,
        "created_at": _iso(created),
        "finished_at": _iso(finished),
    }


def list_runs(
    store: SQLiteStore, project_id: int, testset_id: int | None = None
) -> list[dict[str, Any]]:
    """The project's runs (of one set, when given), newest first, without their results."""
    rows = (
        store._reader()
        .execute(
            f"SELECT {_RUN_COLUMNS} FROM testruns WHERE project_id = ?"
            " AND (? IS NULL OR testset_id = ?) ORDER BY created_us DESC, id",
            (project_id, testset_id, testset_id),
        )
        .fetchall()
    )
    return [_run(row) for row in rows]


def get_run(store: SQLiteStore, project_id: int, run_id: str) -> dict[str, Any] | None:
    """A run with its ``results`` (one per case done); None when the project has none so."""
    conn = store._reader()
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM testruns WHERE project_id = ? AND id = ?",
        (project_id, run_id),
    ).fetchone()
    if row is None:
        return None
    results = []
    for r in conn.execute(
        f"SELECT case_id, scores, {', '.join(_RESULT_COLUMNS)} FROM testresults"
        " WHERE project_id = ? AND run_id = ? ORDER BY case_id",
        (project_id, run_id),
    ):
        result = dict(zip(("case_id", "scores", *_RESULT_COLUMNS), r, strict=True))
        result["scores"] = json.loads(result["scores"])
        for flag in ("passed", "baseline_passed"):
            if result[flag] is not None:
                result[flag] = bool(result[flag])
        results.append(result)
    return {**_run(row), "results": results}


def run_case_ids(store: SQLiteStore, project_id: int, run_id: str) -> set[int] | None:
    """The ids of the cases a run may have results for (its set's); None when the project has
    no such run. What a batch of results is checked against, without reading every case's
    document and every result so far."""
    conn = store._reader()
    row = conn.execute(
        "SELECT testset_id FROM testruns WHERE project_id = ? AND id = ?", (project_id, run_id)
    ).fetchone()
    if row is None:
        return None
    cases = conn.execute(
        "SELECT id FROM testcases WHERE project_id = ? AND testset_id = ?", (project_id, row[0])
    )
    return {case_id for (case_id,) in cases}


def add_results(
    store: SQLiteStore, project_id: int, run_id: str, results: Sequence[dict[str, Any]]
) -> int:
    """Store results of a run (``case_id``, ``scores``, ``output``, ``passed``, ...); a case
    with a result already keeps it. How many were new."""
    now = _now_us()

    def flag(value: Any) -> int | None:
        return None if value is None else int(bool(value))

    cursors = store._write(
        [
            (
                f"INSERT INTO testresults (project_id, run_id, case_id, scores,"
                f" {', '.join(_RESULT_COLUMNS)}, created_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, run_id, case_id) DO NOTHING",
                (
                    project_id,
                    run_id,
                    r["case_id"],
                    _dumps(r.get("scores") or {}),
                    r.get("output"),
                    flag(r.get("passed")),
                    flag(r.get("baseline_passed")),
                    r.get("cost_usd"),
                    r.get("latency_ms"),
                    r.get("error"),
                    r.get("event_id"),
                    now,
                ),
            )
            for r in results
        ]
    )
    return sum(cur.rowcount == 1 for cur in cursors)


def finish_run(
    store: SQLiteStore, project_id: int, run_id: str, status: str, summary: dict[str, Any] | None
) -> bool:
    """Set a run's status (``finished``, ``stopped``: its cost cap, ``running`` again when
    resumed) and summary; False when the project has no such run."""
    finished = None if status == "running" else _now_us()
    document = None if summary is None else _dumps(summary)
    (cur,) = store._write(
        [
            (
                "UPDATE testruns SET status = ?, summary = ?, finished_us = ?"
                " WHERE project_id = ? AND id = ?",
                (status, document, finished, project_id, run_id),
            )
        ]
    )
    return bool(cur.rowcount == 1)
