"""``GET /api/v1/stats`` and ``GET /api/v1/templates``: thin HTTP shells over the store's
query functions (the dashboard renders the same answers).

``group_by`` is a comma-separated list (or repeated) of ``model``, ``prompt_template_name``,
``template_revision``, ``environment``, ``status``, ``api``, ``attributes.KEY``, and one time
bucket of ``minute``, ``hour``, ``day``, ``week`` (from Monday, UTC); the other parameters
filter as on the events list.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..store import GROUPS, TIME_GROUPS
from ..wire import MAX_GROUP_BY
from .auth import confine, project_wide
from .errors import ApiError
from .query import SELECTING, event_filter, json_answer, whole_number

__all__ = ["get_stats", "list_templates", "parse_group_by"]

# Template names a listing holds (the last used first), by default and at most.
TEMPLATES_LISTED = 500
MAX_TEMPLATES_LISTED = 10_000


def parse_group_by(values: list[str]) -> list[str]:
    """The group-by fields asked for, checked; a 400 naming a field that is not one."""
    fields = [f.strip() for v in values for f in v.split(",") if f.strip()]
    if len(fields) > MAX_GROUP_BY:
        raise ApiError(400, f"group_by: {len(fields)} fields, {MAX_GROUP_BY} at most")
    bad = [f for f in fields if f not in GROUPS and not f.startswith("attributes.")]
    bad += [f for f in fields if f == "attributes."]
    if bad:
        raise ApiError(
            400,
            f"group_by: unknown field(s) {', '.join(bad)}",
            [{"field": f, "known": [*GROUPS, "attributes.KEY"]} for f in bad],
        )
    if len(set(fields)) != len(fields):
        raise ApiError(400, "group_by: a field is named twice")
    if sum(f in TIME_GROUPS for f in fields) > 1:
        raise ApiError(400, "group_by: one time bucket at most (minute, hour, day or week)")
    return fields


async def get_stats(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "read")
    query = request.query_params
    f = confine(key, event_filter(query, SELECTING, also=("group_by",)))
    group_by = parse_group_by(query.getlist("group_by"))
    answer: dict[str, Any] = await run_in_threadpool(state.store.stats, key.project_id, f, group_by)
    return await json_answer(answer)


async def list_templates(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "read")
    # Revisions are kept per project, not per environment: they would show the others'.
    project_wide(key, "templates")
    query = request.query_params
    unknown = set(query) - {"name", "limit", "revision"}
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    name = query.get("name")
    if name is not None and not 0 < len(name) <= 512:
        raise ApiError(400, "name: a template's name, 1 to 512 characters")
    limit = whole_number(query.get("limit", str(TEMPLATES_LISTED)), MAX_TEMPLATES_LISTED)
    if limit is None:
        raise ApiError(400, f"limit: a whole number from 1 to {MAX_TEMPLATES_LISTED}")
    revision = query.get("revision")
    if revision is not None and not re.fullmatch(r"[0-9a-f]{1,64}", revision):
        raise ApiError(400, "revision: a revision's id or its start (lowercase hex)")
    templates = await run_in_threadpool(
        state.store.templates, key.project_id, name, limit, revision
    )
    return await json_answer({"templates": templates})
