"""``llmtap.Api``: query a llmtap server from Python.

    api = llmtap.Api()                            # LLMTAP_URL, LLMTAP_API_KEY
    for event in api.events(model="gpt-4o-mini", status="error", attributes={"team": "blue"}):
        ...                                       # pages are fetched as you iterate
    api.events(q="refund", sort="-latency_ms").to_pandas()
    api.stats(group_by=["model", "day"]).to_polars()
    api.templates()

Needs only what the SDK needs (``httpx2`` comes with openai); pandas, polars and pyarrow are
used when installed, for the conversions that ask for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx2

from .settings import resolve

__all__ = ["Api", "ApiError", "EventPages", "Table", "flatten_event"]

# The flat columns of an event (CSV, Parquet, data frames); nested parts become JSON text.
FLAT_COLUMNS = (
    "id",
    "started_at",
    "project",
    "environment",
    "api",
    "provider",
    "model",
    "status",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_creation_tokens",
    "total_tokens",
    "cost_usd",
    "prompt_template_name",
    "template_revision",
    "chat_id",
    "chain_id",
    "parent_event_id",
    "feedback_key",
    "error_type",
    "error_message",
    "output_text",
    "attributes",
    "template_params",
    "template",
    "request",
    "response",
    "feedback",
)
_JSON_COLUMNS = ("attributes", "template_params", "template", "request", "response", "feedback")


class ApiError(Exception):
    """An error answer from the server: ``status`` and the server's message."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def flatten_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """One event as a flat row of ``FLAT_COLUMNS``."""
    usage = event.get("usage") or {}
    error = event.get("error") or {}
    template = event.get("template_chat")
    if template is None:
        template = event.get("template_text")
    row = {name: event.get(name) for name in FLAT_COLUMNS}
    for name in (
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cache_creation_tokens",
    ):
        row[name] = usage.get(name)
    row["total_tokens"] = usage.get("total_tokens")
    row["error_type"] = error.get("type")
    row["error_message"] = error.get("message")
    row["template"] = template
    for name in _JSON_COLUMNS:
        row[name] = _json(row[name])
    return row


def _flatten_group(group: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(group["key"])
    for name, value in group.items():
        if name == "key":
            continue
        if isinstance(value, dict):
            for q, v in value.items():
                row[f"{name.removesuffix('_ms')}_{q}_ms"] = v
        else:
            row[name] = value
    return row


def _params(filters: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters from Python-friendly filters: ``from_``/``to`` as datetimes or
    strings, ``attributes`` as a dict, booleans as true/false."""
    out: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        name = name.rstrip("_")
        if name == "attributes":
            for k, v in value.items():
                out[f"attributes.{k}"] = str(v)
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(map(str, value))
        else:
            out[name] = str(value)
    return out


class _Frames:
    """Conversions of a list of flat rows, for the optional libraries that are installed."""

    def rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows())

    def to_polars(self) -> Any:
        import polars as pl

        return pl.DataFrame(self.rows(), infer_schema_length=None)


class Table(_Frames):
    """A query's answer: ``items`` (plain dicts) and their flat ``rows()``."""

    def __init__(self, items: list[dict[str, Any]], flat: Any = None, raw: Any = None) -> None:
        self.items = items
        self.raw = raw
        self._flat = flat or (lambda item: item)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]

    def rows(self) -> list[dict[str, Any]]:
        return [self._flat(item) for item in self.items]


class EventPages(_Frames):
    """The events a query selects, fetched a page at a time as you iterate."""

    def __init__(self, api: Api, params: dict[str, str]) -> None:
        self._api = api
        self._params = params

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for page in self.pages():
            yield from page

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        params = dict(self._params)
        while True:
            body = self._api._get("/api/v1/events", params)
            yield body["events"]
            if not body.get("next_cursor"):
                return
            params["cursor"] = body["next_cursor"]

    def rows(self) -> list[dict[str, Any]]:
        return [flatten_event(e) for e in self]


class Api:
    """A llmtap server's query API. ``url`` and ``api_key`` default to ``LLMTAP_URL`` and
    ``LLMTAP_API_KEY``; the key decides which project is read."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.url = str(resolve("url", url)).rstrip("/")
        key = resolve("api_key", api_key)
        if not key:
            raise ValueError("llmtap.Api needs an API key: api_key= or LLMTAP_API_KEY")
        self._http = httpx2.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {key}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, response: httpx2.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            # Not llmtap's answer: a proxy's error page, say. Named, not parsed.
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            reason = response.reason_phrase or "answer"
            message = f"{reason}, not JSON ({kind}): is a proxy between you and llmtap?"
            raise ApiError(response.status_code, message) from None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else response.text
            raise ApiError(response.status_code, str(error), body)
        return body

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self._answer(self._http.get(path, params=params))

    def events(self, *, page_size: int = 500, **filters: Any) -> EventPages:
        """Events, newest first unless ``sort=`` says otherwise: filters as on
        ``GET /api/v1/events`` (``from_``, ``to``, ``model``, ``status``, ``attributes={...}``,
        ``q``, ``has_feedback``, ``rating_min``, ...)."""
        return EventPages(self, {**_params(filters), "limit": str(page_size)})

    def event(self, event_id: str) -> dict[str, Any]:
        """One event with its feedback."""
        from urllib.parse import quote

        return self._get(f"/api/v1/events/{quote(event_id, safe='')}")  # type: ignore[no-any-return]

    def stats(self, group_by: str | list[str] | None = None, **filters: Any) -> Table:
        """Stats per group (``model``, ``day``, ``attributes.team``, ...); ``.raw`` is the whole
        answer, ``.rows()`` flat dicts."""
        params = _params(filters)
        if group_by:
            params["group_by"] = group_by if isinstance(group_by, str) else ",".join(group_by)
        body = self._get("/api/v1/stats", params)
        return Table(body["groups"], _flatten_group, body)

    def templates(
        self, name: str | None = None, limit: int = 500, revision: str | None = None
    ) -> Table:
        """The ``limit`` prompt templates last used (or the one ``name``) with their 100
        newest revisions; ``revision``: the one whose id starts so, whenever it was used.
        ``.rows()`` has one row per revision."""
        params = {"limit": str(limit), **({"name": name} if name is not None else {})}
        if revision is not None:
            params["revision"] = revision
        body = self._get("/api/v1/templates", params)

        def revisions(template: dict[str, Any]) -> list[dict[str, Any]]:
            return [
                {"name": template["name"], **_flatten_group({"key": {}, **r})}
                for r in template["revisions"]
            ]

        table = Table(body["templates"], raw=body)
        table.rows = lambda: [r for t in table.items for r in revisions(t)]  # type: ignore[method-assign]
        return table

    def prices(self) -> dict[str, Any]:
        """The project's price overrides and the models it has events of without a price."""
        return self._get("/api/v1/prices")  # type: ignore[no-any-return]

    def set_price(
        self,
        model: str,
        input_per_mtok: float,
        output_per_mtok: float,
        *,
        cached_per_mtok: float | None = None,
        reasoning_per_mtok: float | None = None,
        since: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Price ``model`` at these USD per million tokens for this project (from ``since``
        on); stored events of the model are priced again."""
        body = {
            "model": model,
            "input_per_mtok": input_per_mtok,
            "output_per_mtok": output_per_mtok,
            "cached_per_mtok": cached_per_mtok,
            "reasoning_per_mtok": reasoning_per_mtok,
            "since": since.isoformat() if isinstance(since, datetime) else since,
        }
        return self._answer(self._http.post("/api/v1/prices", json=body))  # type: ignore[no-any-return]

    def boards(self, project: str | None = None) -> dict[str, Any]:
        """The project's boards (without their panels) and the templates offered.
        ``project``: checked to be the key's (``ApiError`` 404 otherwise)."""
        return self._get("/api/v1/boards", _params({"project": project}))  # type: ignore[no-any-return]

    def board(self, board_id: str, project: str | None = None) -> dict[str, Any]:
        """One board with its ``spec``."""
        from urllib.parse import quote

        path = f"/api/v1/boards/{quote(board_id, safe='')}"
        return self._get(path, _params({"project": project}))  # type: ignore[no-any-return]

    def check_board(self, board: Mapping[str, Any]) -> None:
        """Raise ``ApiError`` (400, naming the field) unless ``board`` (``name``, ``spec``,
        ``is_template``) is a valid board; stores nothing."""
        self._answer(self._http.post("/api/v1/boards/validate", json=board))

    def create_board(self, board: Mapping[str, Any]) -> dict[str, Any]:
        """A new board from ``{"name", "spec", "is_template"}`` or ``{"template": NAME}``."""
        return self._answer(self._http.post("/api/v1/boards", json=board))  # type: ignore[no-any-return]

    def delete_price(self, model: str, since: datetime | str | None = None) -> dict[str, Any]:
        params = _params({"model": model, "since": since})
        return self._answer(self._http.delete("/api/v1/prices", params=params))  # type: ignore[no-any-return]

    def delete_event(self, event_id: str) -> dict[str, Any]:
        """Delete one event, with its feedback (an admin key): ``{"ok": true, "deleted": 1}``;
        ``ApiError`` 404 when the project has no such event."""
        from urllib.parse import quote

        path = f"/api/v1/events/{quote(event_id, safe='')}"
        return self._answer(self._http.delete(path))  # type: ignore[no-any-return]

    def delete_events(self, *, all: bool = False, **filters: Any) -> dict[str, Any]:
        """Delete the events the filters select (those of ``events()``), with their feedback
        (an admin key); no filter deletes nothing unless ``all=True``. Answers
        ``{"ok": true, "deleted": N}``."""
        params = _params({**filters, "all": all or None})
        return self._answer(self._http.delete("/api/v1/events", params=params))  # type: ignore[no-any-return]

    # -- alerts and budgets ------------------------------------------------------------------

    _ALERT_PATHS = {"rule": "/api/v1/alerts", "budget": "/api/v1/budgets"}

    def _alert_path(self, kind: str) -> str:
        return self._ALERT_PATHS.get(kind, "/api/v1/alert-channels")

    def alerts(self) -> dict[str, Any]:
        """Rules and budgets with their state per group, the channels (secrets masked), and
        ``firing``: how many fire."""
        return self._get("/api/v1/alerts")  # type: ignore[no-any-return]

    def create_alert(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A new rule, budget (``"kind": "budget"``) or channel (``"kind": "webhook"`` or
        ``"email"``); ``ApiError`` 400 naming a bad field, 409 when the name is taken."""
        path = self._alert_path(str(item.get("kind", "rule")))
        return self._answer(self._http.post(path, json=dict(item)))  # type: ignore[no-any-return]

    def delete_alert(self, name: str, kind: str = "rule") -> dict[str, Any]:
        from urllib.parse import quote

        path = f"{self._alert_path(kind)}/{quote(name, safe='')}"
        return self._answer(self._http.delete(path))  # type: ignore[no-any-return]

    def test_alert(self, name: str, kind: str = "rule") -> dict[str, Any]:
        """Send a test notification of a rule or budget to its channels now: each outcome."""
        from urllib.parse import quote

        path = f"{self._alert_path(kind)}/{quote(name, safe='')}/test"
        return self._answer(self._http.post(path))  # type: ignore[no-any-return]

    def export_alerts(self) -> dict[str, Any]:
        """Rules and budgets as one document ``{"rules": [...], "budgets": [...]}``."""
        return self._get("/api/v1/alerts/export")  # type: ignore[no-any-return]

    def import_alerts(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Store the rules and budgets of an exported document (replacing those of the same
        names); nothing is stored when one is invalid."""
        answer = self._http.post("/api/v1/alerts/import", json=dict(document))
        return self._answer(answer)  # type: ignore[no-any-return]
