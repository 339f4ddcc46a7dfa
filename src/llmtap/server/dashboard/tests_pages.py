"""The prompt-test pages: test sets, one set with its cases and runs, one run side by side
with its baseline (the original outputs, or another run: the comparison of two runs). The
same views as ``/api/v1/testsets`` and ``/api/v1/runs`` answer (``?format=json``).

And their forms, through the same functions as the API: a set from the feedback page or from
the events page's filters, a case's expected output and tags edited, a case or a set removed.
A project's members and admins (and the owner) may use them; viewers only look."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...store import NameTaken
from ..errors import ApiError
from ..query import whole_number
from ..testsets import (
    MAX_ID,
    Source,
    add_cases_to,
    build_cases,
    change_case,
    check_cases,
    remove_case,
    run_view,
)
from .auth import check_csrf, user_of
from .pages import Context
from .render import render_page, wants_json

__all__ = [
    "back_to",
    "case_form",
    "delete_testset_form",
    "may_change_tests",
    "new_testset_form",
    "run_page",
    "testset_page",
    "testsets_page",
]
# Form fields that are not an events filter.
_NOT_FILTER = {"csrf_token", "project", "name", "source", "template", "testset", "feedback_id"}


async def testsets_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    found = await run_in_threadpool(ctx.store.list_testsets, project["id"])
    data = {"project": project["name"], "testsets": found}
    return await render_page(request, "testsets.html", data, projects=projects, title="Tests")


def _set_with_runs(store: Any, project_id: int, testset_id: int) -> dict[str, Any]:
    testset = store.get_testset(project_id, testset_id) if testset_id < 2**63 else None
    if testset is None:
        raise ApiError(404, f"no test set {testset_id} in this project")
    return {"testset": testset, "runs": store.list_runs(project_id, testset_id)}


# Cases a page of a test set (or of a run) shows: a set can hold tens of thousands.
CASES_SHOWN = 500


def _page_of(request: Request, rows: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The rows of the page ``?page=`` asks for (from 1; past the last, the last), and where
    it is among them, with the links to the pages beside it."""
    if wants_json(request) and "page" not in request.query_params:
        # The download ("Download the run (JSON)"): every case, as the API's view has them.
        whole = {"first": min(1, len(rows)), "last": len(rows), "total": len(rows)}
        return rows, {**whole, "previous": None, "next": None}
    asked = whole_number(request.query_params.get("page", "1"), 10**9)
    if asked is None:
        raise ApiError(400, "page: a whole number from 1")
    pages = max(1, -(-len(rows) // CASES_SHOWN))
    page = min(asked, pages)
    start = (page - 1) * CASES_SHOWN

    def link(to: int) -> str | None:
        if not 1 <= to <= pages or to == page:
            return None
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        return f"{request.url.path}?{urlencode([*query, ('page', str(to))])}"

    where = {
        "first": start + 1,
        "last": min(start + CASES_SHOWN, len(rows)),
        "total": len(rows),
        "previous": link(page - 1),
        "next": link(page + 1),
    }
    return rows[start : start + CASES_SHOWN], where


async def testset_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    testset_id = int(request.path_params["testset_id"])
    found = await run_in_threadpool(_set_with_runs, ctx.store, project["id"], testset_id)
    every = found["testset"]["cases"]
    shown, paging = _page_of(request, every)
    found["testset"] = {**found["testset"], "cases": shown}
    data = {"project": project["name"], **found, "paging": paging}
    title = f"Test set {found['testset']['name']}"
    user = user_of(request)
    may_change = user.is_owner or user.role(project["name"]) in ("member", "admin")
    ready = request.app.state.provider.configured
    revisions: list[dict[str, Any]] = []
    if ready and may_change:  # the run form's choice: a stored revision of the cases' templates
        names = {c.get("prompt_template_name") for c in every}
        for template in await run_in_threadpool(ctx.store.templates, project["id"]):
            if template["name"] in names:
                revisions += [
                    {"name": template["name"], "revision": r["revision"]}
                    for r in template["revisions"]
                ]
    return await render_page(
        request,
        "testset.html",
        data,
        projects=projects,
        title=title,
        may_change=may_change,
        provider_ready=ready,
        revisions=revisions,
        # Why the last run started here could not run (see ``launch.run_form``), if it could not.
        job_failure=request.app.state.run_failures.get((project["id"], testset_id)),
    )


async def run_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    run_id = request.path_params["run_id"]
    baseline = request.query_params.get("baseline") or None
    view = await run_in_threadpool(run_view, ctx.store, project["id"], run_id, baseline)
    others = await run_in_threadpool(ctx.store.list_runs, project["id"], view["run"]["testset_id"])
    rows, paging = _page_of(request, view["cases"])
    data = {"project": project["name"], **view, "cases": rows, "paging": paging}
    return await render_page(
        request,
        "run.html",
        data,
        projects=projects,
        others=[r for r in others if r["id"] != run_id],
        title=f"Run {run_id[:12]}",
    )


async def may_change_tests(request: Request, form: Any) -> tuple[str, int]:
    """(project name, id) of the project the form names, once its user may change its test
    sets (a member or admin of it, or the owner: else 403) and it exists (else 404)."""
    project = str(form.get("project") or "")
    user = user_of(request)
    if not (user.is_owner or user.role(project) in ("member", "admin")):
        raise ApiError(403, f"changing test sets of project {project!r} needs its member role")
    pid = await run_in_threadpool(request.app.state.store.project_id, project)
    if pid is None:
        raise ApiError(404, f"no project {project!r}")
    return project, pid


def back_to(path: str, project: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'project': project})}", status_code=303)


async def new_testset_form(request: Request) -> Response:
    """``POST /testsets``: a set named ``name`` from the feedback (``source=feedback``, of one
    ``template`` when given) or from the events the other fields select (the events list's
    filters); or those cases added to the existing set ``testset`` (its events already there
    are not added twice)."""
    form = await check_csrf(request)
    project, pid = await may_change_tests(request, form)
    name = str(form.get("name") or "").strip()
    fields = {k: v for k, v in form.items() if k not in _NOT_FILTER and isinstance(v, str) and v}
    ticked = [v for v in form.getlist("feedback_id") if isinstance(v, str)]
    try:
        src = Source.model_validate(
            {
                "source": "feedback" if form.get("source") == "feedback" else "events",
                "template": str(form.get("template") or "") or None,
                "filter": fields,
                # The feedback ticked on its page: only those (none ticked: all of it).
                "feedback_ids": ticked or None,
            }
        )
    except ValidationError as exc:
        raise ApiError(400, f"invalid test set: {exc.errors()[0]['msg']}") from None
    existing = str(form.get("testset") or "")
    if not existing and (not name or len(name) > 200):
        raise ApiError(400, "a test set needs a name (200 characters at most)")
    if existing and whole_number(existing, MAX_ID) is None:
        raise ApiError(400, f"no test set {existing[:40]!r}")
    store = request.app.state.store
    # Events read as this project's: the dashboard user sees every environment of it.
    key = SimpleNamespace(project_id=pid, env_only=False, environment=None)

    def make() -> int:
        cases = build_cases(store, key, src)
        check_cases(cases)  # before the set is made: a refusal leaves no empty set
        if existing:
            testset_id = int(existing)
            if store.get_testset(pid, testset_id) is None:
                raise ApiError(404, f"no test set {testset_id} in project {project!r}")
        else:
            try:
                testset_id = int(store.create_testset(pid, name, ["normalized"]))
            except NameTaken as exc:
                raise ApiError(409, str(exc)) from None
        add_cases_to(store, pid, testset_id, cases, checked=True)
        return testset_id

    testset_id = await run_in_threadpool(make)
    return back_to(f"/testsets/{testset_id}", project)


async def case_form(request: Request) -> Response:
    """``POST /testsets/{id}/cases/{case_id}``: save its ``expected`` and ``tags`` (commas
    between), or remove it (``action=delete``)."""
    form = await check_csrf(request)
    project, pid = await may_change_tests(request, form)
    testset_id = int(request.path_params["testset_id"])
    case_id = int(request.path_params["case_id"])
    if testset_id >= 2**63 or case_id >= 2**63:
        raise ApiError(404, f"no case {case_id} in test set {testset_id}")
    store = request.app.state.store
    if form.get("action") == "delete":
        await run_in_threadpool(remove_case, store, pid, testset_id, case_id)
    else:
        tags = [t.strip() for t in str(form.get("tags") or "").split(",") if t.strip()]
        fields = {"expected": str(form.get("expected") or "") or None, "tags": tags}
        await run_in_threadpool(change_case, store, pid, testset_id, case_id, fields)
    return back_to(f"/testsets/{testset_id}", project)


async def delete_testset_form(request: Request) -> Response:
    """``POST /testsets/{id}/delete``: the set, its cases, runs and results."""
    form = await check_csrf(request)
    project, pid = await may_change_tests(request, form)
    testset_id = int(request.path_params["testset_id"])
    store = request.app.state.store
    if testset_id >= 2**63 or not await run_in_threadpool(store.delete_testset, pid, testset_id):
        raise ApiError(404, f"no test set {testset_id} in project {project!r}")
    return back_to("/testsets", project)
