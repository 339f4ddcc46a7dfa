"""One query, two renderings: each page builds its data once, then answers HTML (Jinja2,
autoescaped) or, with ``?format=json`` or ``Accept: application/json``, that same data as
JSON."""

from __future__ import annotations

import json
import math
import re
import shlex
from datetime import timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from ...store import attribute_text
from ...wire import finite_number, parse_instant
from .auth import csrf_token, current_user, set_csrf_cookie
from .conversation import pretty_json

__all__ = [
    "error_page",
    "highlight_filled",
    "highlight_placeholders",
    "render",
    "render_page",
    "templates",
    "wants_json",
]

HERE = Path(__file__).parent
# Autoescape everything: prompts, responses, attribute keys and values are user text.
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def wants_json(request: Request) -> bool:
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def render(request: Request, template: str, data: dict[str, Any], **page: Any) -> Response:
    """``data`` as JSON, or ``template`` rendered with ``data`` and the page's extras."""
    if wants_json(request):
        return JSONResponse(data)
    context = {
        **data,
        **page,
        "csrf_token": csrf_token(request),
        "current_user": current_user(request),
        "request": request,
    }
    response = templates.TemplateResponse(request, template, context)
    set_csrf_cookie(request, response)
    return response


async def render_page(
    request: Request, template: str, data: dict[str, Any], **page: Any
) -> Response:
    """:func:`render`, on a worker thread: a page of large prompts takes a while to render,
    and the event loop serves every other request (ingest included) meanwhile."""
    return await run_in_threadpool(render, request, template, data, **page)


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page, for a browser (the API answers the same error as JSON)."""
    context = {
        "error_status": status,
        "message": message,
        "title": f"Error {status}",
        "csrf_token": csrf_token(request),
        "current_user": current_user(request),
        "request": request,
    }
    response = templates.TemplateResponse(request, "error.html", context, status_code=status)
    set_csrf_cookie(request, response)
    return response


def highlight_placeholders(template: str) -> Markup:
    """The template, escaped, with each ``{name}`` marked."""
    out, last = [], 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(escape(template[last : match.start()]))
        out.append(Markup('<mark class="ph">{}</mark>').format(match.group(0)))
        last = match.end()
    out.append(escape(template[last:]))
    return Markup("").join(out)


def highlight_filled(template: str, params: dict[str, Any]) -> Markup:
    """The template filled in, escaped, with each filled-in value marked (its parameter name
    on hover); placeholders without a value stay as written."""
    out, last = [], 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(escape(template[last : match.start()]))
        name = match.group(1)
        if name in params:
            value = params[name]
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            out.append(Markup('<mark class="val" title="{}">{}</mark>').format(name, text))
        else:
            out.append(escape(match.group(0)))
        last = match.end()
    out.append(escape(template[last:]))
    return Markup("").join(out)


def _short_time(value: str | None) -> str:
    """A stored time as the pages show it: UTC, to the second (a time sent with an offset,
    ``23:30+05:00``, had been shown as 23:30 under a "UTC" heading)."""
    if not value:
        return ""
    try:
        moment = parse_instant(value)
        if moment.utcoffset():
            return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError):  # outside the years UTC can hold: as it was sent
        pass
    return value[:19].replace("T", " ")


def _shorten(value: Any, most: int = 2000) -> str:
    """A text cut to ``most`` characters, saying how many it left out: a page of 500 test
    cases, each with 100 KB of parameters, had been 26 MB of HTML."""
    text = "" if value is None else str(value)
    if len(text) <= most:
        return text
    return f"{text[:most]}… ({len(text) - most:,} more characters)"


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def _datetime_input(value: str | None) -> str:
    """An ISO time as a datetime-local input shows it (UTC, no zone), or empty."""
    if not value:
        return ""
    try:
        moment = parse_instant(value).astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):  # not a time, or before year 1 or after 9999 in UTC
        return ""
    return moment.isoformat(timespec="seconds")


def _cost(value: float | None) -> str:
    if not finite_number(value):
        return "\u2013"  # an en dash: no cost known (or none a page can show)
    if 0 < value < 0.0001:  # a small call's cost: two significant digits, not "$0.0000"
        return f"${value:.{min(1 - math.floor(math.log10(value)), 12)}f}"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def page_url(path: str, project: str = "", **params: Any) -> str:
    """A dashboard URL that keeps the project. An id or a name as sent goes in through the
    ``seg`` filter (``'/chats/' ~ e.chat_id|seg``): quoted whole, its ``/`` too, so a ``?``
    or ``#`` stays in the path instead of starting a query or a fragment, and ``a/../b`` is
    not read by the browser as a way to ``b``. The rest is quoted here, what ``seg`` quoted
    left as it is."""
    path = quote(path, safe="/%")
    query = {"project": project, **params}
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


def path_segment(value: Any) -> str:
    """``value`` quoted as one segment of a path (see ``page_url``)."""
    return quote(str(value), safe="")


templates.env.globals["url"] = page_url
templates.env.filters.update(
    attr_text=attribute_text,
    seg=path_segment,
    pretty=pretty_json,
    shorten=_shorten,
    datetime_input=_datetime_input,
    short_time=_short_time,
    num=_num,
    cost=_cost,
    placeholders=highlight_placeholders,
    filled=highlight_filled,
    # A command line to copy (the replay of an event): ids and names quoted for a shell.
    shell=shlex.quote,
)
