"""``/api/v1/testsets`` and ``/api/v1/runs``: prompt tests (issue 15).

A key with ``read`` lists and reads its project's sets and runs; changing them (making a set,
adding, editing and removing cases, recording a run's results) needs ``admin``. Cases come
from the project's feedback, from an events filter, or from JSON lines (the dashboard's
feedback download imports as it is); a case of an event the set has already is refused and
named in the answer. The runner (``llmtap test``) runs on the caller's side, with the
caller's provider key, and records its results here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..evals.cases import (
    DEFAULT_THRESHOLD,
    MAX_CASES,
    MAX_MS,
    MAX_USD,
    CaseIn,
    case_from_event,
    cases_from_jsonl,
    jsonl_lines,
)
from ..evals.results import compare
from ..store import KeyInfo, NameTaken, Store
from ..wire import MAX_TEXT_CHARS, finite_number
from .auth import confine, project_wide_key
from .errors import ApiError
from .ingest import not_storable, not_unicode, parse_json, read_body
from .query import SELECTING, event_filter, json_answer, whole_number

__all__ = [
    "Source",
    "add_cases_to",
    "build_cases",
    "change_case",
    "check_cases",
    "feedback_cases",
    "remove_case",
    "run_view",
    "testset_routes",
]

_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_EVALUATORS = 20
_FEEDBACK_PAGE = 500
# A row id as both stores keep it (a bigger number would overflow the database's integer).
MAX_ID = 2**63 - 1  # a store's id: a signed 64-bit integer
Id = Annotated[int, Field(ge=0, le=MAX_ID)]


async def _key(request: Request, scope: str) -> KeyInfo:
    """The caller's key: one that reads only its own environment is refused (403), as for
    templates: a set's cases and a run's results are the project's, whatever environment
    their events came from."""
    return await project_wide_key(request, scope, "test sets and runs")


async def _admin_body(request: Request, model: type[BaseModel], what: str) -> tuple[Any, Any]:
    """(the key, the body as ``model``) of a request that changes the project (``admin``)."""
    state = request.app.state
    key = await _key(request, "admin")
    payload = await run_in_threadpool(parse_json, await read_body(request, state.max_body_bytes))
    return key, _validated(model, payload, what)


def _validated(model: type[BaseModel], payload: Any, what: str) -> Any:
    try:
        valid = model.model_validate(payload)
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])), "error": e["msg"]} for e in exc.errors()]
        raise ApiError(400, f"invalid {what}", errors) from None
    # pydantic refuses a lone surrogate in a plain string, not inside a dict's or list's:
    # a filter's value or an evaluator's spec would reach the store, which cannot take it.
    problem = not_unicode(payload)
    if problem:
        raise ApiError(400, f"invalid {what}: {problem}")
    return valid


class Source(BaseModel):
    """Where new cases come from."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["feedback", "events", "cases"] = "cases"
    # feedback: all of it, or these feedback ids; of one template, when given.
    feedback_ids: list[Id] | None = Field(None, max_length=MAX_CASES)
    template: str | None = Field(None, max_length=1000)
    # events: the events list's filters, as its query string would give them.
    filter: dict[str, str] = Field(default_factory=dict, max_length=40)
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=1)
    cases: list[CaseIn] = Field(default_factory=list, max_length=MAX_CASES)


class _NewSet(Source):
    name: str = Field(min_length=1, max_length=200)
    evaluators: list[str] | None = Field(None, max_length=_MAX_EVALUATORS)


class _CaseEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected: str | None = Field(None, max_length=1_000_000)
    expected_kind: Literal["better", "output", "differ", "none"] | None = None
    tags: list[str] | None = Field(None, max_length=50)


class _NewRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_RUN_ID.pattern)
    testset: Id
    config: Annotated[dict[str, Any], AfterValidator(_config)] = Field(default_factory=dict)


def _numbers_or_none(where: dict[str, Any], keys: tuple[str, ...], what: str) -> None:
    for name in keys:
        value = where.get(name)
        if value is not None and not finite_number(value):
            raise ValueError(f"{what}{name} must be a number or null")


def _scores(scores: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each evaluator's score as the pages read it: a number from 0 to 1 (or null), a
    reason (text), a detail (an object)."""
    for name, score in scores.items():
        label = f"{name[:100]}: "
        _numbers_or_none(score, ("score",), label)
        if score.get("score") is not None and not 0 <= score["score"] <= 1:
            raise ValueError(f"{label}score must be from 0 to 1")
        for part, kind in (("reason", str), ("detail", dict), ("error", str)):
            if score.get(part) is not None and not isinstance(score[part], kind):
                raise ValueError(
                    f"{label}{part} must be {kind.__name__.replace('dict', 'an object')}"
                )
    return scores


def _config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's settings: what the pages compute with are numbers (or null)."""
    _numbers_or_none(config, ("estimate_usd", "max_cost_usd"), "config.")
    for name in ("estimate_usd", "max_cost_usd"):
        if config.get(name) is not None and not 0 <= config[name] <= MAX_USD:
            raise ValueError(f"config.{name} must be from 0 to {MAX_USD:g}")
    return config


# What the pages and the CLI read of a stored summary, as numbers.
_SUMMARY_NUMBERS = (
    "total",
    "done",
    "passed",
    "errors",
    "regressions",
    "fixed",
    "pass_rate",
    "cost_usd",
    "spent_usd",
)


def _summary(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    _numbers_or_none(summary, _SUMMARY_NUMBERS, "")
    for part in ("latency_ms", "mean_scores"):
        values = summary.get(part)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ValueError(f"{part} must be an object or null")
        _numbers_or_none(values, tuple(values), f"{part}.")
    return summary


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: Id
    output: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    scores: Annotated[dict[str, dict[str, Any]], AfterValidator(_scores)] = Field(
        default_factory=dict, max_length=_MAX_EVALUATORS
    )
    passed: bool | None = None
    baseline_passed: bool | None = None
    cost_usd: float | None = Field(None, ge=0, le=MAX_USD, allow_inf_nan=False)
    latency_ms: float | None = Field(None, ge=0, le=MAX_MS, allow_inf_nan=False)
    error: str | None = Field(None, max_length=10_000)
    event_id: str | None = Field(None, max_length=1000)


class _Results(BaseModel):
    results: list[_Result] = Field(max_length=MAX_CASES)


class _RunStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["running", "finished", "stopped", "failed"]
    summary: Annotated[dict[str, Any] | None, AfterValidator(_summary)] = None


def feedback_cases(store: Store, project_id: int, src: Source) -> list[dict[str, Any]]:
    """A case per rated event, expecting its newest rating and its newest better response
    (feedback may send either alone); of one template when asked, of the chosen feedback when
    asked."""
    wanted = set(src.feedback_ids) if src.feedback_ids is not None else None
    found: dict[str, list[Any]] = {}  # event id: [event, rating, better response]
    before = None
    while len(found) < MAX_CASES:
        page = store.list_feedback(project_id, _FEEDBACK_PAGE, before)
        if not page:
            break
        before = page[-1]["id"]
        for item in page:  # newest first
            event = item["event"]
            if event is None or (wanted is not None and item["id"] not in wanted):
                continue
            if src.template is not None and event.get("prompt_template_name") != src.template:
                continue
            entry = found.get(event.get("id"))
            if entry is None:
                if len(found) < MAX_CASES:
                    found[event.get("id")] = [event, item["rating"], item["better_response"]]
                continue
            if entry[1] is None:
                entry[1] = item["rating"]
            if entry[2] is None:
                entry[2] = item["better_response"]
    return [
        case_from_event(event, rating, better, src.threshold)
        for event, rating, better in found.values()
    ]


def build_cases(store: Store, key: Any, src: Source) -> list[dict[str, Any]]:
    """The cases ``src`` selects, for ``key``'s project."""
    if src.source == "feedback":
        return feedback_cases(store, key.project_id, src)
    if src.source == "events":
        f = confine(key, event_filter(src.filter, SELECTING))
        cases = []
        for summary in store.iter_events(key.project_id, f):
            event = store.get_event(key.project_id, summary["id"])
            if event is not None:
                cases.append(case_from_event(event, threshold=src.threshold))
            if len(cases) >= MAX_CASES:
                break
        return cases
    return [c.case(src.threshold) for c in src.cases]


def check_cases(cases: list[dict[str, Any]]) -> None:
    """A 400 when ``cases`` hold what the store cannot keep (see ``ingest.not_storable``):
    before a set is made for them, so a refused request leaves no empty set behind."""
    problem = not_storable(cases)
    if problem:
        raise ApiError(400, f"invalid cases: {problem}")


def add_cases_to(
    store: Store,
    project_id: int,
    testset_id: int,
    cases: list[dict[str, Any]],
    checked: bool = False,
) -> Any:
    """Add ``cases`` (``checked``: by ``check_cases`` already) to the set."""
    if not checked:
        check_cases(cases)
    refused = store.add_cases(project_id, testset_id, cases) if cases else []
    return {
        "added": len(cases) - len(refused),
        "duplicates": [
            {"index": i, "event_id": cases[i]["event_id"], "error": "the set has this event"}
            for i in refused
        ],
    }


async def _payload(request: Request) -> tuple[Source | None, list[dict[str, Any]]]:
    """Cases to add: JSON lines (the feedback download, say) as they are, or a ``Source``."""
    state = request.app.state
    body = await read_body(request, state.max_body_bytes)
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind in ("application/x-ndjson", "application/jsonl", "text/plain"):
        cases, problems = await run_in_threadpool(_jsonl, body)
        if problems:
            raise ApiError(400, f"{len(problems)} line(s) are not test cases", problems[:100])
        return None, cases
    payload = await run_in_threadpool(parse_json, body)
    return _validated(Source, payload, "cases"), []


def _jsonl(body: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise ApiError(400, "JSON lines must be UTF-8 text") from None
    lines = jsonl_lines(text)
    if len(lines) > MAX_CASES:
        raise ApiError(400, f"{len(lines)} lines: {MAX_CASES} cases at most per request")
    return cases_from_jsonl(lines)


def _path_id(request: Request, name: str) -> int:
    value = int(request.path_params[name])
    if value > MAX_ID:
        raise ApiError(404, f"no {name.removesuffix('_id')} {value}")
    return value


def _set_or_404(store: Store, project_id: int, testset_id: int) -> dict[str, Any]:
    found = store.get_testset(project_id, testset_id)
    if found is None:
        raise ApiError(404, f"no test set {testset_id} in this project")
    return found


async def list_testsets(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "read")
    found = await run_in_threadpool(state.store.list_testsets, key.project_id)
    name = request.query_params.get("name")
    if name is not None:
        found = [s for s in found if s["name"] == name]
    return await json_answer({"testsets": found})


async def create_testset(request: Request) -> JSONResponse:
    state = request.app.state
    key, new = await _admin_body(request, _NewSet, "test set")
    evaluators = new.evaluators
    if evaluators is None:  # from feedback: compare with what was expected, no judge, no cost
        evaluators = ["normalized"]

    def make() -> dict[str, Any]:
        _check_evaluators(evaluators)  # compiles patterns and schemas: here, not on the loop
        cases = build_cases(state.store, key, new)
        check_cases(cases)
        try:
            testset_id = state.store.create_testset(key.project_id, new.name, evaluators)
        except NameTaken as exc:
            raise ApiError(409, str(exc)) from None
        added = add_cases_to(state.store, key.project_id, testset_id, cases, checked=True)
        return {"ok": True, "testset": state.store.get_testset(key.project_id, testset_id), **added}

    return JSONResponse(await run_in_threadpool(make), status_code=201)


def _check_evaluators(specs: list[str]) -> None:
    """Each of ``specs`` an evaluator a set may keep (see ``evals.evaluators``): known, its
    argument valid, and neither reading a file nor running code where the set is run."""
    from ..evals.evaluators import stored_evaluators

    if any(len(spec) > 10_000 for spec in specs):
        raise ApiError(400, "an evaluator's spec is at most 10,000 characters")
    try:
        stored_evaluators(specs)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


async def get_testset(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "read")
    testset_id = _path_id(request, "testset_id")
    return await json_answer(
        await run_in_threadpool(_set_or_404, state.store, key.project_id, testset_id)
    )


async def delete_testset(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "admin")
    testset_id = _path_id(request, "testset_id")
    if not await run_in_threadpool(state.store.delete_testset, key.project_id, testset_id):
        raise ApiError(404, f"no test set {testset_id} in this project")
    return JSONResponse({"ok": True, "deleted": 1})


async def add_cases(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "admin")
    testset_id = _path_id(request, "testset_id")
    src, ready = await _payload(request)

    def add() -> dict[str, Any]:
        _set_or_404(state.store, key.project_id, testset_id)
        cases = ready if src is None else build_cases(state.store, key, src)
        return {"ok": True, **add_cases_to(state.store, key.project_id, testset_id, cases)}

    return JSONResponse(await run_in_threadpool(add))


def change_case(
    store: Store, project_id: int, testset_id: int, case_id: int, fields: dict[str, Any]
) -> dict[str, Any]:
    """Edit a case's ``expected`` and ``tags``; the case as it is now. A 404 when the set has
    no such case. A changed ``expected`` is what the case expects from then on (nothing to
    compare with, when emptied), unless ``expected_kind`` says otherwise; one sent unchanged
    (a form that sends every field) leaves the case's kind as it was, so a case that must
    differ from its original output, or an original output rated well, stays one."""
    found = _set_or_404(store, project_id, testset_id)
    case = next((c for c in found["cases"] if c["id"] == case_id), None)
    if case is None:
        raise ApiError(404, f"no case {case_id} in test set {testset_id}")
    edit: _CaseEdit = _validated(_CaseEdit, fields, "case edit")
    given = edit.model_dump(exclude_unset=True)
    expected = given.get("expected", case["expected"])
    kind = given.get("expected_kind")
    if kind is None and expected != case["expected"]:
        kind = "better" if expected else "none"
    tags = given.get("tags", case["tags"])
    problem = not_storable([expected, tags])
    if problem:
        raise ApiError(400, f"invalid case edit: {problem}")
    store.update_case(project_id, case_id, expected, kind or case["expected_kind"], tags)
    updated = _set_or_404(store, project_id, testset_id)
    return next(c for c in updated["cases"] if c["id"] == case_id)  # type: ignore[no-any-return]


def remove_case(store: Store, project_id: int, testset_id: int, case_id: int) -> None:
    """Remove a case of a set; a 404 when the set has no such case."""
    found = _set_or_404(store, project_id, testset_id)
    if not any(c["id"] == case_id for c in found["cases"]):
        raise ApiError(404, f"no case {case_id} in test set {testset_id}")
    store.delete_case(project_id, case_id)


async def edit_case(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "admin")
    payload = await run_in_threadpool(parse_json, await read_body(request, state.max_body_bytes))
    testset_id, case_id = _path_id(request, "testset_id"), _path_id(request, "case_id")
    case = await run_in_threadpool(
        change_case, state.store, key.project_id, testset_id, case_id, payload
    )
    return JSONResponse({"ok": True, "case": case})


async def delete_case(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "admin")
    testset_id, case_id = _path_id(request, "testset_id"), _path_id(request, "case_id")
    await run_in_threadpool(remove_case, state.store, key.project_id, testset_id, case_id)
    return JSONResponse({"ok": True, "deleted": 1})


# -- runs --------------------------------------------------------------------------------


def run_view(
    store: Store, project_id: int, run_id: str, baseline_id: str | None = None
) -> dict[str, Any]:
    """A run with its set, compared with its baseline (another run of the set, or the
    original outputs): what ``GET /api/v1/runs/{id}`` answers and the run page shows."""
    run = store.get_run(project_id, run_id)
    if run is None:
        raise ApiError(404, f"no run {run_id!r} in this project")
    testset = _set_or_404(store, project_id, run["testset_id"])
    baseline = None
    if baseline_id:
        baseline = store.get_run(project_id, baseline_id)
        if baseline is None or baseline["testset_id"] != run["testset_id"]:
            raise ApiError(404, f"no run {baseline_id!r} of the same test set to compare with")
    compared = compare(testset, run, baseline)
    meta = {k: v for k, v in testset.items() if k != "cases"}
    # Which version of the set each ran: cases added, edited or removed in between make two
    # runs differ in more than their template or model.
    versions = {
        "run": run.get("testset_version"),
        "baseline": baseline.get("testset_version") if baseline else None,
        "set": testset.get("version"),
    }
    return {
        "run": {k: v for k, v in run.items() if k != "results"},
        "testset": meta,
        "versions": versions,
        **compared,
    }


async def list_runs(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "read")
    raw = request.query_params.get("testset")
    testset_id = None if raw is None else whole_number(raw, MAX_ID)
    if raw is not None and testset_id is None:
        raise ApiError(400, "testset: expected a test set's id")
    runs = await run_in_threadpool(state.store.list_runs, key.project_id, testset_id)
    return await json_answer({"runs": runs})


async def create_run(request: Request) -> JSONResponse:
    state = request.app.state
    key, new = await _admin_body(request, _NewRun, "run")
    problem = not_storable(new.config)
    if problem:
        raise ApiError(400, f"invalid run: {problem}")

    def make() -> dict[str, Any]:
        # Which of the two refusals it was is asked only after one: reading the set (every
        # case's document) before each run would cost a run of a thousand cases ~10 ms.
        if not state.store.create_run(key.project_id, new.id, new.testset, new.config):
            if state.store.run_case_ids(key.project_id, new.id) is not None:
                raise ApiError(409, f"the project has a run {new.id!r} already")
            raise ApiError(404, f"no test set {new.testset} in this project")
        return {"ok": True, "run": state.store.get_run(key.project_id, new.id)}

    return JSONResponse(await run_in_threadpool(make), status_code=201)


async def get_run(request: Request) -> JSONResponse:
    state = request.app.state
    key = await _key(request, "read")
    run_id = request.path_params["run_id"]
    baseline = request.query_params.get("baseline")
    if request.query_params.get("raw") in ("1", "true"):
        run = await run_in_threadpool(state.store.get_run, key.project_id, run_id)
        if run is None:
            raise ApiError(404, f"no run {run_id!r} in this project")
        return await json_answer(run)
    view = await run_in_threadpool(run_view, state.store, key.project_id, run_id, baseline)
    return await json_answer(view)


async def add_results(request: Request) -> JSONResponse:
    state = request.app.state
    key, results = await _admin_body(request, _Results, "results")
    rows = [r.model_dump() for r in results.results]
    problem = not_storable(rows)
    if problem:
        raise ApiError(400, f"invalid results: {problem}")
    run_id = request.path_params["run_id"]

    def store_them() -> int:
        known = state.store.run_case_ids(key.project_id, run_id)
        if known is None:
            raise ApiError(404, f"no run {run_id!r} in this project")
        strangers = [r["case_id"] for r in rows if r["case_id"] not in known]
        if strangers:
            raise ApiError(400, f"case(s) not in the run's test set: {strangers[:20]}")
        return int(state.store.add_results(key.project_id, run_id, rows))

    stored = await run_in_threadpool(store_them)
    return JSONResponse({"ok": True, "stored": stored, "duplicates": len(rows) - stored})


async def set_run_status(request: Request) -> JSONResponse:
    state = request.app.state
    key, change = await _admin_body(request, _RunStatus, "run status")
    problem = not_storable(change.summary)
    if problem:
        raise ApiError(400, f"invalid run status: {problem}")
    run_id = request.path_params["run_id"]
    done = await run_in_threadpool(
        state.store.finish_run, key.project_id, run_id, change.status, change.summary
    )
    if not done:
        raise ApiError(404, f"no run {run_id!r} in this project")
    return JSONResponse({"ok": True})


def testset_routes() -> list[Route]:
    cases = "/api/v1/testsets/{testset_id:id}/cases"
    return [
        Route("/api/v1/testsets", list_testsets, methods=["GET"]),
        Route("/api/v1/testsets", create_testset, methods=["POST"]),
        Route("/api/v1/testsets/{testset_id:id}", get_testset, methods=["GET"]),
        Route("/api/v1/testsets/{testset_id:id}", delete_testset, methods=["DELETE"]),
        Route(cases, add_cases, methods=["POST"]),
        Route(cases + "/{case_id:id}", edit_case, methods=["PATCH"]),
        Route(cases + "/{case_id:id}", delete_case, methods=["DELETE"]),
        Route("/api/v1/runs", list_runs, methods=["GET"]),
        Route("/api/v1/runs", create_run, methods=["POST"]),
        Route("/api/v1/runs/{run_id}", get_run, methods=["GET"]),
        Route("/api/v1/runs/{run_id}", set_run_status, methods=["PATCH"]),
        Route("/api/v1/runs/{run_id}/results", add_results, methods=["POST"]),
    ]
