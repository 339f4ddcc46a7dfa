"""``/api/v1/alerts``, ``/api/v1/budgets`` and ``/api/v1/alert-channels``: rules, budgets and
notification channels as JSON, with the existing key scopes (``read`` lists, ``admin``
changes and sends tests). The dashboard's alerts page renders ``alerts_answer``.

| method, path | |
|---|---|
| ``GET /api/v1/alerts`` | rules, budgets (each with its state per group), channels, ``firing`` |
| ``POST /api/v1/alerts`` | a new rule (409 when its name is taken) |
| ``GET, PUT, DELETE /api/v1/alerts/{name}`` | one rule with its history; replace; remove |
| ``POST /api/v1/alerts/{name}/test`` | send a test notification to its channels now |
| ``GET, POST /api/v1/alerts/export``, ``/import`` | rules and budgets as one JSON document |

``/api/v1/budgets`` and ``/api/v1/alert-channels`` answer the same way for their kind.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ...store import KeyInfo, Store
from ..auth import project_wide_key
from ..errors import ApiError
from ..ingest import not_unicode, parse_json, read_body
from ..query import json_answer
from .notify import check_webhook_host, checked_host
from .rules import validated

__all__ = ["alert_routes", "alerts_answer", "check_item", "checked", "send_test_now"]

_PATHS = {
    "rule": "/api/v1/alerts",
    "budget": "/api/v1/budgets",
    "channel": "/api/v1/alert-channels",
}
_PLURAL = {"rule": "rules", "budget": "budgets", "channel": "channels"}
_WORST = {"firing": 0, "resolved": 1, "ok": 2}


def _masked(channel: dict[str, Any]) -> dict[str, Any]:
    """A channel as anyone with ``read`` may see it: no secret, no password, and a webhook's
    URL cut to its host (a Slack URL's path is its credential)."""
    out = {k: v for k, v in channel.items() if k not in ("secret", "password")}
    if channel["kind"] == "webhook":
        parts = urlsplit(channel["url"])
        out["url"] = f"{parts.scheme}://{parts.netloc}/…"
        out["signed"] = bool(channel.get("secret"))
    return out


def _unmasked(store: Store, project_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    """A channel sent back as it was read (masked): what the mask hid is kept from the stored
    channel of that name, so that a read, edit, write round trip changes only the edit. A
    URL cut to its host, a webhook still ``signed`` without its secret, an email channel
    without its password."""
    found = _find(store, project_id, "channel", str(payload["name"]))
    stored = found["body"] if found is not None else None
    if stored is None or stored.get("kind") != payload.get("kind"):
        return payload
    out = dict(payload)
    if stored["kind"] == "webhook":
        if out.get("url") == _masked(stored)["url"]:
            out["url"] = stored["url"]
        if "secret" not in out and out.get("signed") and stored.get("secret"):
            out["secret"] = stored["secret"]
    elif "password" not in out and stored.get("password"):
        out["password"] = stored["password"]
    out.pop("signed", None)
    return out


def alerts_answer(store: Store, project_id: int) -> dict[str, Any]:
    """Rules and budgets with their states (the worst group's first), and the channels."""
    states: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in store.alert_states(project_id):
        public = {k: v for k, v in s.items() if k not in ("project_id", "since_us", "evaluated_us")}
        states.setdefault((s["kind"], s["name"]), []).append(public)
    out: dict[str, Any] = {}
    for kind in ("rule", "budget"):
        items = []
        for item in store.alert_items(project_id, kind):
            groups = sorted(states.get((kind, item["name"]), []), key=lambda s: _WORST[s["state"]])
            items.append(
                {
                    **item["body"],
                    "state": groups[0]["state"] if groups else "ok",
                    "groups": groups,
                    "updated_at": item["updated_at"],
                }
            )
        out[_PLURAL[kind]] = items
    out["channels"] = [_masked(c["body"]) for c in store.alert_items(project_id, "channel")]
    out["firing"] = sum(
        1 for kind in ("rules", "budgets") for i in out[kind] if i["state"] == "firing"
    )
    return out


def check_item(kind: str, payload: Any, channels: Collection[str] | None = None) -> dict[str, Any]:
    """``payload`` validated as a ``kind`` (a 400 naming the bad field), as stored. Blocks
    (a channel's host is resolved, and refused when not public): call it from a worker
    thread. ``channels``: the project's channel names, which a rule or budget must name
    from (an import may bring rules before their channels: it passes None)."""
    problem = not_unicode(payload)
    if problem is not None:
        raise ApiError(400, f"invalid {kind}: {problem}")
    item = validated(kind, payload)
    body = item.model_dump(mode="json")
    unknown = [c for c in body.get("channels", []) if channels is not None and c not in channels]
    if unknown:
        have = ", ".join(sorted(channels or [])) or "none yet"
        error = f"no channel named {unknown[0]!r} in this project (it has: {have})"
        raise ApiError(
            400, f"invalid {kind}: channels: {error}", [{"field": "channels", "error": error}]
        )
    channel = body.get("kind")  # a channel's: webhook or email
    where = "url" if channel == "webhook" else "host"
    if channel in ("webhook", "email"):
        try:
            if channel == "webhook":
                check_webhook_host(body["url"])
            else:
                checked_host(body["host"], "the SMTP server")
        except ValueError as exc:
            raise ApiError(
                400, f"invalid channel: {where}: {exc}", [{"field": where, "error": str(exc)}]
            ) from None
    return body


def checked(store: Store, project_id: int, kind: str, payload: Any) -> dict[str, Any]:
    """``check_item`` against the project's channels."""
    channels = {c["name"] for c in store.alert_items(project_id, "channel")}
    return check_item(kind, payload, channels)


async def _key(request: Request, scope: str) -> KeyInfo:
    return await project_wide_key(request, scope, "alerts")


async def _payload(request: Request) -> Any:
    body = await read_body(request, request.app.state.max_body_bytes)
    return await run_in_threadpool(parse_json, body)


def _find(store: Store, project_id: int, kind: str, name: str) -> dict[str, Any] | None:
    return next((i for i in store.alert_items(project_id, kind) if i["name"] == name), None)


def _one(store: Store, project_id: int, kind: str, name: str) -> dict[str, Any]:
    found = _find(store, project_id, kind, name)
    if found is None:
        raise ApiError(404, f"no {kind} named {name!r}")
    return found


def _routes_of(kind: str) -> list[Route]:
    path = _PATHS[kind]

    async def listing(request: Request) -> JSONResponse:
        key = await _key(request, "read")
        answer = await run_in_threadpool(alerts_answer, request.app.state.store, key.project_id)
        if kind == "rule":  # the whole picture: rules, budgets, channels, how many fire
            return await json_answer(answer)
        return await json_answer({_PLURAL[kind]: answer[_PLURAL[kind]]})

    async def create(request: Request) -> JSONResponse:
        key = await _key(request, "admin")
        store = request.app.state.store
        payload = await _payload(request)
        body = await run_in_threadpool(checked, store, key.project_id, kind, payload)
        made = await run_in_threadpool(
            store.put_alert_item, key.project_id, kind, body["name"], body, True
        )
        if not made:
            raise ApiError(
                409, f"a {kind} named {body['name']!r} exists: PUT {path}/NAME to replace it"
            )
        return JSONResponse({"ok": True, kind: _shown(kind, body)}, status_code=201)

    async def one(request: Request) -> JSONResponse:
        key = await _key(request, "read")
        store = request.app.state.store
        name = request.path_params["name"]
        item = await run_in_threadpool(_one, store, key.project_id, kind, name)
        history = await run_in_threadpool(store.alert_history, key.project_id, kind, name)
        return await json_answer({kind: _shown(kind, item["body"]), "history": history})

    async def replace(request: Request) -> JSONResponse:
        key = await _key(request, "admin")
        payload = await _payload(request)
        name = request.path_params["name"]
        store = request.app.state.store
        if isinstance(payload, dict):
            payload = {**payload, "name": payload.get("name", name)}
            if kind == "channel":
                payload = await run_in_threadpool(_unmasked, store, key.project_id, payload)
        body = await run_in_threadpool(checked, store, key.project_id, kind, payload)
        if body["name"] != name:
            raise ApiError(400, f"name: the body names {body['name']!r}, the path {name!r}")
        await run_in_threadpool(store.put_alert_item, key.project_id, kind, name, body, False)
        return JSONResponse({"ok": True, kind: _shown(kind, body)})

    async def remove(request: Request) -> JSONResponse:
        key = await _key(request, "admin")
        name = request.path_params["name"]
        store = request.app.state.store
        if not await run_in_threadpool(store.delete_alert_item, key.project_id, kind, name):
            raise ApiError(404, f"no {kind} named {name!r}")
        return JSONResponse({"ok": True, "deleted": 1})

    routes = [
        Route(path, listing, methods=["GET"]),
        Route(path, create, methods=["POST"]),
    ]
    if kind != "channel":
        routes.append(Route(path + "/{name:text}/test", _test(kind), methods=["POST"]))
    routes += [
        Route(path + "/{name:text}", one, methods=["GET"]),
        Route(path + "/{name:text}", replace, methods=["PUT"]),
        Route(path + "/{name:text}", remove, methods=["DELETE"]),
    ]
    return routes


def _shown(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return _masked(body) if kind == "channel" else body


def _test(kind: str) -> Any:
    async def send_test(request: Request) -> JSONResponse:
        key = await _key(request, "admin")
        state = request.app.state
        item = await run_in_threadpool(
            _one, state.store, key.project_id, kind, request.path_params["name"]
        )
        results = await run_in_threadpool(
            send_test_now, state, key.project_id, key.project, kind, item["body"]
        )
        return JSONResponse({"ok": all(r["ok"] for r in results), "results": results})

    return send_test


def send_test_now(
    state: Any, project_id: int, project: str, kind: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send a test of a rule or budget to its channels now, once each; their outcomes."""
    from .evaluate import chosen, test_note
    from .rules import Budget, Rule

    watch = Rule.model_validate(body) if kind == "rule" else Budget.model_validate(body)
    channels = chosen([c["body"] for c in state.store.alert_items(project_id, "channel")], watch)
    if not channels:
        raise ApiError(
            400,
            f"{body['name']!r} has no channel to send to: add one (POST /api/v1/alert-channels)"
            + (f" named {', '.join(watch.channels)}" if watch.channels else ""),
        )
    return state.notifier.send_now(test_note(project, project_id, kind, body), channels)  # type: ignore[no-any-return]


async def export_alerts(request: Request) -> JSONResponse:
    key = await _key(request, "read")
    store = request.app.state.store

    def gather() -> dict[str, Any]:
        return {
            _PLURAL[kind]: [i["body"] for i in store.alert_items(key.project_id, kind)]
            for kind in ("rule", "budget")
        }

    return await json_answer(await run_in_threadpool(gather))


async def import_alerts(request: Request) -> JSONResponse:
    """``{"rules": [...], "budgets": [...]}``: all checked first (errors by index, nothing
    stored), then each stored, replacing one of the same name."""
    key = await _key(request, "admin")
    payload = await _payload(request)
    if not isinstance(payload, dict) or set(payload) - {"rules", "budgets"}:
        raise ApiError(400, 'expected a JSON object {"rules": [...], "budgets": [...]}')

    def check() -> list[tuple[str, dict[str, Any]]]:
        good, errors = [], []
        for kind in ("rule", "budget"):
            items = payload.get(_PLURAL[kind], [])
            if not isinstance(items, list):
                raise ApiError(400, f"{_PLURAL[kind]}: expected a list")
            for index, item in enumerate(items):
                try:
                    good.append((kind, check_item(kind, item)))
                except ApiError as exc:
                    errors.append({"field": f"{_PLURAL[kind]}.{index}", "error": exc.message})
        if errors:
            raise ApiError(
                400, f"invalid import: {errors[0]['field']}: {errors[0]['error']}", errors
            )
        return good

    good = await run_in_threadpool(check)
    store = request.app.state.store
    for kind, body in good:
        await run_in_threadpool(
            store.put_alert_item, key.project_id, kind, body["name"], body, False
        )
    counts = {p: sum(1 for k, _ in good if _PLURAL[k] == p) for p in ("rules", "budgets")}
    return JSONResponse({"ok": True, "imported": counts})


def alert_routes() -> list[Route]:
    return [
        Route("/api/v1/alerts/export", export_alerts, methods=["GET"]),
        Route("/api/v1/alerts/import", import_alerts, methods=["POST"]),
        *(route for kind in ("rule", "budget", "channel") for route in _routes_of(kind)),
    ]
