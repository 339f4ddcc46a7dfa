"""The prompt-test pages: test sets, one set with its cases and runs, one run side by side
with its baseline (the original outputs, or another run: the comparison of two runs). The
same views as ``/api/v1/testsets`` and ``/api/v1/runs`` answer (``?format=json``)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ApiError
from ..testsets import run_view
from .pages import Context
from .render import render_page

__all__ = ["run_page", "testset_page", "testsets_page"]


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


async def testset_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    testset_id = int(request.path_params["testset_id"])
    found = await run_in_threadpool(_set_with_runs, ctx.store, project["id"], testset_id)
    data = {"project": project["name"], **found}
    title = f"Test set {found['testset']['name']}"
    return await render_page(request, "testset.html", data, projects=projects, title=title)


async def run_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    run_id = request.path_params["run_id"]
    baseline = request.query_params.get("baseline") or None
    view = await run_in_threadpool(run_view, ctx.store, project["id"], run_id, baseline)
    others = await run_in_threadpool(ctx.store.list_runs, project["id"], view["run"]["testset_id"])
    data = {"project": project["name"], **view}
    return await render_page(
        request,
        "run.html",
        data,
        projects=projects,
        others=[r for r in others if r["id"] != run_id],
        title=f"Run {run_id[:12]}",
    )
