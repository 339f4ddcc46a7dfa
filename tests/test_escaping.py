"""Escaping, everywhere, by construction of the test.

Every user-controlled field of every kind of event (sent through the HTTP API, and through the
real SDK against the fake provider), feedback, and the project and environment names hold
hostile payloads tagged with the field's name (see ``tests/hostile.py``). Then every page the
router has (discovered from ``create_app(...).routes``, so a new page is walked without an edit
here) is fetched as a logged-in admin, with its path parameters filled from the seeded data and
with query strings that echo payloads, and the raw HTML is checked: no payload became markup,
and every seeded payload is shown, escaped, on at least one page.

A route with a path parameter this test cannot fill fails it: add the parameter to
``_path_values`` (with seeded data that page shows).
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx2
import pytest
from markupsafe import escape
from selectolax.lexbor import LexborHTMLParser
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.server import create_app
from llmtap.store import open_store

from .conftest import Project, Server, start_server, stop_server, tap_config
from .hostile import KINDS, Findings, inspect_page, payload, payloads
from .test_dashboard_http import csrf_of, login
from .test_server import event, post_events

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass
class Seeded:
    """What the seeding made: the values path parameters are filled from, and the fields whose
    payloads some page must show."""

    projects: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    template_names: list[str] = field(default_factory=list)
    chat_ids: list[str] = field(default_factory=list)
    chain_ids: list[str] = field(default_factory=list)
    invite_tokens: list[str] = field(default_factory=list)
    board_ids: list[str] = field(default_factory=list)
    share_tokens: list[str] = field(default_factory=list)
    testset_ids: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    # Payloads no page can show: an event id with a slash (the `</script>` one) has no page of
    # its own, and elsewhere it is only in links (quoted). Still checked for leaks everywhere.
    unshown: set[tuple[str, str]] = field(default_factory=lambda: {("event_id", "script")})

    def tagged(self, name: str, kind: str) -> str:
        self.fields.add(name)
        return payload(name, kind)


def _chat_event(seed: Seeded, kind: str) -> dict[str, Any]:
    """A chat call with every field hostile: messages (text, parts, a name, a role, an image,
    a tool call and its result), response, template and parameters, ids, attributes."""

    def p(name: str) -> str:
        return seed.tagged(name, kind)

    call = {
        "id": p("tool_call_id"),
        "type": "function",
        "function": {"name": p("tool_name"), "arguments": json.dumps({"city": p("tool_args")})},
    }
    chat_id, chain_id, template_name = p("chat_id"), p("chain_id"), p("template_name")
    seed.chat_ids.append(chat_id)
    seed.chain_ids.append(chain_id)
    seed.template_names.append(template_name)
    messages = [
        {"role": "system", "content": [{"type": "text", "text": p("system")}]},
        {"role": "user", "name": p("message_name"), "content": p("prompt")},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/?" + p("image")}},
                {"type": "image_url", "image_url": {"url": "javascript:alert(1)"}},
                {"type": p("part_type")},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": p("tool_result")},
        {"role": p("role"), "content": "a message with an odd role"},
    ]
    reply = {"role": "assistant", "content": p("response_text")}
    return event(
        model=p("model"),
        provider=p("provider"),
        request={"messages": messages, "user": p("request_extra")},
        response={
            "id": p("response_id"),
            "choices": [{"index": 0, "message": reply, "finish_reason": p("finish_reason")}],
        },
        output_text=p("output"),
        prompt_template_name=template_name,
        template_chat=[{"role": "user", "content": p("template") + " {x}"}],
        template_params={"x": p("param_value"), p("param_key"): [p("param_list")]},
        chat_id=chat_id,
        chain_id=chain_id,
        parent_event_id=p("parent_event_id"),
        feedback_key=p("feedback_key"),
        attributes={p("attr_key"): p("attr_value"), "nested": {"k": p("attr_nested")}},
        sdk={"name": p("sdk_name"), "version": "1"},
        usage={"input_tokens": 3, "output_tokens": 4},
        latency_ms=12.5,
    )


def _other_events(seed: Seeded, kind: str) -> list[dict[str, Any]]:
    """The other shapes: a failed call, a completion, a responses call with a function call,
    embeddings, a text template."""

    def p(name: str) -> str:
        return seed.tagged(name, kind)

    text_template = p("text_template_name")
    seed.template_names.append(text_template)
    return [
        # An id is text too.
        event(id=p("event_id")),
        event(
            status="error",
            error={"type": p("error_type"), "message": p("error_message"), "status_code": 500},
        ),
        event(
            api="completion",
            request={"prompt": p("completion_prompt")},
            response={"choices": [{"text": p("completion_text"), "finish_reason": "stop"}]},
        ),
        event(
            api="responses",
            request={
                "instructions": p("instructions"),
                "input": [
                    {"role": "user", "content": [{"type": "input_text", "text": p("input")}]},
                    {"type": "function_call_output", "call_id": "c1", "output": p("fn_output")},
                ],
            },
            response={
                "output": [
                    {
                        "type": "function_call",
                        "call_id": p("fn_call_id"),
                        "name": p("fn_name"),
                        "arguments": p("fn_args"),
                    }
                ]
            },
        ),
        event(api="embeddings", request={"input": [p("embedding_input")]}, response=None),
        event(
            prompt_template_name=text_template,
            template_text=p("text_template") + " {y}",
            template_params={"y": p("text_param")},
        ),
    ]


def _through_sdk(seed: Seeded, kind: str, provider: FakeProvider, project: Project) -> None:
    """Calls made with ``llmtap.Client`` (so the SDK's own event shapes are covered): a
    template filled in, a tool call, feedback."""

    def p(name: str) -> str:
        return seed.tagged(name, kind)

    config = tap_config(project, attributes={"deployment": p("sdk_config_attr")})
    client = llmtap.Client(api_key="sk-fake", base_url=provider.base_url, llmtap=config)
    chat_id, chain_id, name = p("sdk_chat_id"), p("sdk_chain_id"), p("sdk_template_name")
    seed.chat_ids.append(chat_id)
    seed.chain_ids.append(chain_id)
    seed.template_names.append(name)
    params = {
        "prompt_template_name": name,
        "chat_id": chat_id,
        "chain_id": chain_id,
        "attributes": {p("sdk_attr_key"): p("sdk_attr_value")},
    }
    try:
        chat = llmtap.TemplateChat(
            [
                {"role": "system", "content": p("sdk_template") + " {persona}"},
                {"role": "user", "content": "{question} [[reply:" + p("sdk_output") + "]]"},
            ],
            {"persona": p("sdk_param"), "question": p("sdk_question")},
        )
        ids = [str(uuid.uuid4()), str(uuid.uuid4())]
        seed.event_ids += ids
        answer = client.chat.completions.create(
            model=p("sdk_model"), messages=chat, llmtap={**params, "event_id": ids[0]}
        )
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "[[tool:" + p("sdk_tool") + "]]"}],
            llmtap={**params, "event_id": ids[1]},
        )
        client.send_feedback(
            feedback_key=answer.model_extra["llmtap_feedback_key"],
            rating=0.25,
            better_response=p("sdk_better_response"),
        )
        assert client.flush(10)
    finally:
        client.close()


def _prompt_tests(seed: Seeded, kind: str, project: Project) -> None:
    """A test set made from the project's (hostile) feedback, a case imported as JSON lines,
    and a run whose results hold hostile outputs, errors and a judge's prompt and answer."""

    def p(name: str) -> str:
        return seed.tagged(name, kind)

    server = project.server
    made = server.post(
        "/api/v1/testsets",
        project.key,
        json={"name": p("testset_name"), "source": "feedback", "evaluators": ["normalized"]},
    )
    assert made.status_code == 201, made.text
    testset = made.json()["testset"]
    line = {
        "tags": [p("case_tag")],
        "expected": p("case_expected"),
        "template_params": {"q": p("case_param")},
        "output": p("case_original"),
        "prompt_template_name": p("case_template_name"),
    }
    added = server.post(
        f"/api/v1/testsets/{testset['id']}/cases",
        project.key,
        headers={"content-type": "application/x-ndjson"},
        content=json.dumps(line) + "\n",
    )
    assert added.status_code == 200 and added.json()["added"] == 1, added.text
    cases = server.get(f"/api/v1/testsets/{testset['id']}", project.key).json()["cases"]
    run_id = f"run-{kind}-{uuid.uuid4().hex[:6]}"
    config = {"model": p("run_model"), "template_label": p("run_template_label")}
    run = {"id": run_id, "testset": testset["id"], "config": config}
    assert server.post("/api/v1/runs", project.key, json=run).status_code == 201
    score = {
        "score": 0.5,
        "reason": p("score_reason"),
        "detail": {"prompt": p("judge_prompt"), "answer": p("judge_answer")},
    }
    results = [
        {
            "case_id": case["id"],
            "output": p("run_output"),
            "error": p("run_error"),
            "scores": {"judge": score},
            "passed": False,
        }
        for case in cases
    ]
    sent = server.post(f"/api/v1/runs/{run_id}/results", project.key, json={"results": results})
    assert sent.status_code == 200, sent.text
    seed.testset_ids.append(str(testset["id"]))
    seed.run_ids.append(run_id)


def _seed(server: Server, provider: FakeProvider) -> Seeded:
    seed = Seeded()
    main = seed.tagged("project", "attr")
    seed.projects.append(main)
    for kind in KINDS:
        # The main project has a hostile environment of each kind; the other two kinds of
        # project name get a project each, with one event.
        project = Project(server.new_key(main, seed.tagged("environment", kind)), server)
        chat = _chat_event(seed, kind)
        events = [chat, *_other_events(seed, kind)]
        seed.event_ids += [e["id"] for e in events]
        answer = post_events(project, events)
        assert answer.status_code == 200 and answer.json()["rejected"] == 0, answer.text
        better = {"rating": 0.5, "better_response": seed.tagged("better_response", kind)}
        sent = server.post(
            "/api/v1/feedback", project.key, json={"feedback_key": chat["feedback_key"], **better}
        )
        assert sent.status_code == 200, sent.text
        _through_sdk(seed, kind, provider, project)
        _context_span(seed, kind, project)
        _prompt_tests(seed, kind, project)
        if kind != "attr":
            name = seed.tagged("project", kind)
            seed.projects.append(name)
            other = Project(server.new_key(name), server)
            assert post_events(other, [event(model=payload("model", kind))]).status_code == 200
    _invite(server, seed)
    _alerts(Project(server.new_key(main), server), seed)
    _boards(server, seed)
    return seed


def _context_span(seed: Seeded, kind: str, project: Project) -> None:
    """A step of a chain that is no model call, sent over OTLP (JSON): its name and an
    attribute hostile, shown on the chain's page."""
    trace = uuid.uuid4().hex
    seed.chain_ids.append(trace)
    span = {
        "traceId": trace,
        "spanId": uuid.uuid4().hex[:16],
        "name": seed.tagged("context_name", kind),
        "startTimeUnixNano": str(int(time.time() * 1e9)),
        "endTimeUnixNano": str(int(time.time() * 1e9) + 5_000_000),
        "attributes": [
            {
                "key": seed.tagged("context_key", kind),
                "value": {"stringValue": seed.tagged("context_value", kind)},
            }
        ],
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    sent = project.server.post("/v1/traces", project.key, json=body)
    assert sent.status_code == 200 and "kept as context" in sent.text, sent.text


def _alerts(project: Project, seed: Seeded) -> None:
    """Alert rules, budgets and channels of the main project, every text of them hostile."""
    for kind in KINDS:
        items = [
            (
                "/api/v1/alerts",
                {
                    "name": seed.tagged("rule_name", kind),
                    "description": seed.tagged("rule_description", kind),
                    "measure": "requests",
                    "window": 3600,
                    "threshold": 0,
                    "filters": {"attributes.team": seed.tagged("rule_filter", kind)},
                },
            ),
            (
                "/api/v1/budgets",
                {"name": seed.tagged("budget_name", kind), "limit_usd": 1, "group_by": "model"},
            ),
            (
                "/api/v1/alert-channels",
                {
                    "kind": "email",
                    "name": seed.tagged("channel_name", kind),
                    "host": "smtp.example.com",
                    "sender": "llmtap@example.com",
                    "to": ["oncall@example.com"],
                },
            ),
        ]
        for path, body in items:
            made = project.server.post(path, project.key, json=body)
            assert made.status_code == 201, made.text


def _boards(server: Server, seed: Seeded) -> None:
    """A board of each kind in the main project, published: its name is on the boards list,
    its page and the published one; its panels (drawn by the page's script from JSON) carry
    payloads in their title, filter and group-by, checked for leaks wherever they are. The
    links allow the events behind a panel: panel ``drill`` (by model, all time) lists the
    hostile events' summaries."""
    key = server.new_key(seed.projects[0])
    for kind in KINDS:
        panel = {
            "title": payload("panel_title", kind),
            "measures": ["requests", "cost"],
            "view": "table",
            "group_by": "attributes." + payload("attr_key", kind),
            "filters": {"model": payload("model", kind)},
        }
        drill = {
            "id": "drill",
            "measures": ["requests"],
            "view": "table",
            "group_by": "model",
            "time_range": {"last": "all"},
        }
        board = {"name": seed.tagged("board_name", kind), "spec": {"panels": [panel, drill]}}
        made = server.post("/api/v1/boards", key, json=board)
        assert made.status_code == 201, made.text
        seed.board_ids.append(made.json()["id"])
        link = server.post(
            f"/api/v1/boards/{made.json()['id']}/shares", key, json={"allow_bodies": True}
        )
        assert link.status_code == 201, link.text
        seed.share_tokens.append(link.json()["token"])


def _invite(server: Server, seed: Seeded) -> None:
    """Invitations to the main project: one left open (its page shows the invited e-mail), one
    taken by a user whose name the settings page lists."""
    with login(server) as owner:
        for kind in KINDS:
            for email in (seed.tagged("invite_email", kind), None):
                settings = owner.get("/settings")
                made = owner.post(
                    "/settings/invitations",
                    data={
                        "csrf_token": csrf_of(settings.text),
                        "project": seed.projects[0],
                        "role": "viewer",
                        **({"email": email} if email else {}),
                    },
                )
                assert made.status_code == 200, made.text
                link = LexborHTMLParser(made.text).css_first("pre.key[data-copy]")
                assert link is not None, made.text
                token = link.text().rsplit("/invite/", 1)[1]
                if email:
                    seed.invite_tokens.append(token)
                    continue
                with httpx2.Client(base_url=server.url) as newcomer:
                    page = newcomer.get(f"/invite/{token}")
                    joined = newcomer.post(
                        f"/invite/{token}",
                        data={
                            "csrf_token": csrf_of(page.text),
                            "name": seed.tagged("user_name", kind),
                            "password": "a long enough password",
                        },
                    )
                assert joined.status_code == 303, joined.text


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, provider: FakeProvider
) -> Iterator[tuple[Server, Seeded]]:
    """A server of its own (so its project list is ours alone), filled with hostile data."""
    # Its e-mail channel's host is a name that does not resolve here: not checked.
    server = start_server(
        tmp_path_factory.mktemp("escaping"), env={"LLMTAP_ALERT_ALLOW_NETWORKS": "*"}
    )
    try:
        yield server, _seed(server, provider)
    finally:
        stop_server(server)


def _page_paths(routes: list[BaseRoute], prefix: str = "") -> Iterator[str]:
    """The path of every route that answers GET, Mount sub-routes included."""
    for route in routes:
        if isinstance(route, Mount):
            # A mount without routes is an app of its own (the static files), not pages.
            yield from _page_paths(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            if route.methods is None or "GET" in route.methods:
                yield prefix + route.path
        elif not isinstance(route, WebSocketRoute):
            raise AssertionError(f"a route of a kind this test cannot walk: {route!r}")


def _router_paths(tmp: Path) -> list[str]:
    store = open_store(str(tmp / "routes.db"))
    try:
        return sorted(
            set(_page_paths(create_app(store, admin_token="routes-only-admin-token").routes))
        )
    finally:
        store.close()


def _path_values(seed: Seeded) -> dict[str, list[str]]:
    """How each path parameter is filled: the seeded values, and one no page has (so an
    error page that echoes it is checked too)."""
    missing = payload("missing", "attr")
    return {
        "event_id": [*seed.event_ids, missing],
        "name": [*seed.template_names, missing],
        "value": [*seed.chat_ids, *seed.chain_ids, missing],
        "token": [*seed.invite_tokens, *seed.share_tokens, missing],
        "board_id": [*seed.board_ids, missing],
        "version": ["1", missing],
        "testset_id": [*seed.testset_ids, "9223372036854775808"],
        "run_id": [*seed.run_ids, missing],
    }


def _urls(paths: list[str], seed: Seeded) -> Iterator[tuple[str, str]]:
    """(route, path) for every page to fetch: each route with each filling of its
    parameters."""
    values = _path_values(seed)
    for route in paths:
        names = _PARAM.findall(route)
        unknown = [n for n in names if n not in values]
        assert not unknown, (
            f"{route}: the escaping test does not know how to fill {unknown}; add them to "
            "_path_values in tests/test_escaping.py, with seeded data that this page shows"
        )
        for filling in itertools.product(*(values[n] for n in names)):
            yield route, _fill(route, dict(zip(names, filling, strict=True)))


def _fill(route: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda match: quote(values[match.group(1)], safe=""), route)


def _queries(seed: Seeded) -> list[dict[str, str]]:
    """Query strings that echo payloads: every filter and page parameter the pages read, and
    the seeded hostile attribute, model and template used as filters."""
    echo = {
        name: payloads(f"qs_{name}")
        for name in (
            "model",
            "prompt_template_name",
            "template_revision",
            "environment",
            "chat_id",
            "chain_id",
            "q",
            "from",
            "to",
            "status",
            "sort",
            "cursor",
            "limit",
            "rating_min",
            "rating_max",
            "has_feedback",
            "range",
            "a",
            "b",
            "project",
            "baseline",
        )
    }
    variants = [{name: value} for name, value in echo.items()]
    variants += [
        {"attr": payloads("qs_attr_key") + "=" + payloads("qs_attr_value")},
        {"by": "attributes." + payloads("qs_by")},
        {"next": "/" + payloads("qs_next")},
        {"attributes." + payloads("qs_attributes_key"): payloads("qs_attributes_value")},
    ]
    for kind in KINDS:
        variants += [
            {"by": "attributes." + payload("attr_key", kind), "range": "all"},
            {"attr": payload("attr_key", kind) + "=" + payload("attr_value", kind)},
            {"model": payload("model", kind), "range": "all"},
            {"prompt_template_name": payload("template_name", kind)},
        ]
    return variants


@dataclass
class Walk:
    fetched: int = 0
    html: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    shown: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # payload -> routes
    combos: set[tuple[str, str]] = field(default_factory=set)  # (route, field)

    def fetch(self, browser: httpx2.Client, route: str, path: str, query: dict[str, str]) -> None:
        response = browser.get(path, params=query)
        self.fetched += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        where = f"GET {path} {query}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
        if not response.headers.get("content-type", "").startswith("text/html"):
            return
        self.html += 1
        found: Findings = inspect_page(response.text)
        self.leaks += [f"{where}: {leak}" for leak in found.leaks]
        for shown in found.shown:
            self.shown.setdefault(shown, set()).add(route)
            self.combos.add((route, shown[0]))


def test_every_page_shows_every_payload_escaped(
    seeded: tuple[Server, Seeded], tmp_path: Path
) -> None:
    server, seed = seeded
    paths = _router_paths(tmp_path)
    assert {"/", "/events", "/events/{event_id:text}", "/feedback", "/settings"} <= set(paths)
    walk = Walk()
    with login(server) as browser:
        for route, path in _urls(paths, seed):
            walk.fetch(browser, route, path, {})
            for project in seed.projects:
                walk.fetch(browser, route, path, {"project": project, "range": "all"})
        # The query strings on each route once, with its first filling, in the main project.
        first = {route: path for route, path in reversed(list(_urls(paths, seed)))}
        for (route, path), query in itertools.product(first.items(), _queries(seed)):
            walk.fetch(browser, route, path, {"project": seed.projects[0], **query})
    # And as a stranger: the pages open to anyone (log in, an invitation) matter most.
    with httpx2.Client(base_url=server.url, headers={"accept": "text/html"}) as stranger:
        for route, path in _urls(paths, seed):
            walk.fetch(stranger, route, path, {})
        # A published board's drill-down takes only its own parameters: the events behind
        # the panel, and behind a group named by a payload.
        drills = [{"panel": "drill"}]
        drills += [{"panel": "drill", "group": payload("model", k)} for k in KINDS]
        for token, query in itertools.product(seed.share_tokens, drills):
            walk.fetch(stranger, "/b/{token}/events", f"/b/{quote(token)}/events", query)
    assert ("/b/{token}/events", "model") in walk.combos, "the drill-down showed no event"
    assert not walk.leaks, "\n".join(walk.leaks[:40])
    missing = sorted(
        f"{name} ({kind})"
        for name in seed.fields
        for kind in KINDS
        if (name, kind) not in walk.shown.keys() | seed.unshown
    )
    assert not missing, f"payloads seeded but shown escaped on no page: {missing}"
    seeded_combos = {c for c in walk.combos if not c[1].startswith(("qs_", "missing"))}
    print(
        f"\nescaping: {len(paths)} GET routes, {walk.fetched} fetches ({walk.html} HTML), "
        f"statuses {dict(sorted(walk.statuses.items()))}; {len(seed.fields)} seeded fields x "
        f"{len(KINDS)} kinds, {len(seeded_combos)} route x seeded-field combinations shown "
        f"escaped, {len(walk.combos) - len(seeded_combos)} route x query-field ones "
        f"({sorted({f for _, f in walk.combos - seeded_combos})})"
    )


def test_links_to_an_odd_id_lead_to_its_page(seeded: tuple[Server, Seeded]) -> None:
    """Ids and names go into link paths escaped as URL text: one with ``?``, ``#``, ``%``,
    ``&``, ``+`` or a space still leads to its own page (a slash is kept: chat, chain and
    template routes take one)."""
    server, seed = seeded
    odd = "?#%&+ =x"
    ids = {"events": f"event{odd}", "chats": f"chat/{odd}", "chains": f"chain/{odd}"}
    name = f"template/{odd}"
    project = Project(server.new_key(seed.projects[0], "links"), server)
    sent = event(
        id=ids["events"],
        chat_id=ids["chats"],
        chain_id=ids["chains"],
        prompt_template_name=name,
        template_text="plain",
    )
    assert post_events(project, [sent]).json()["stored"] == 1
    wanted = {**{f"/{kind}/": value for kind, value in ids.items()}, "/templates/": name}
    with login(server) as browser:
        here = {"project": seed.projects[0]}
        pages = [
            browser.get("/events/" + quote(ids["events"], safe=""), params=here),
            browser.get("/templates", params=here),
        ]
        followed = set()
        for page in pages:
            assert page.status_code == 200, page.text
            tree = LexborHTMLParser(page.text)
            for link in tree.css("a[href]"):
                href = link.attributes["href"] or ""
                path = unquote(href.partition("?")[0])
                prefix = next((p for p in wanted if path == p + wanted[p]), None)
                if prefix is None:
                    continue
                target = browser.get(href)
                assert target.status_code == 200, (href, target.text)
                assert wanted[prefix] in LexborHTMLParser(target.text).body.text(), href
                followed.add(prefix)
    assert followed == set(wanted)


_IMG, _SCRIPT, _ATTR = (payload("f", kind) for kind in KINDS)


@pytest.mark.parametrize(
    ("html", "leak"),
    [
        (f"<p>{escape(_IMG)}</p><p title='{escape(_ATTR)}'>x</p>", None),
        (f"<p>{_IMG}</p>", "raw markup of f (img)"),
        # Quotes left unescaped in an attribute: no element is made, but the value is left.
        (f'<input value="{_ATTR.replace("<", "&lt;").replace(">", "&gt;")}">', "not ours"),
        (f"<script type=application/json>{json.dumps([_SCRIPT])}</script>", "no longer parses"),
        (f"<script>const s = {json.dumps(_IMG)};</script>", "a payload inside a script"),
        ('<img src=" JavaScript:alert(1)">', "a script URL"),
    ],
)
def test_the_page_check_sees_each_way_out(html: str, leak: str | None) -> None:
    """The check itself can fail: each way a payload gets out is seen (and escaping is not)."""
    found = inspect_page(html)
    if leak is None:
        assert not found.leaks and found.shown == {("f", "img"), ("f", "attr")}
    else:
        assert any(leak in seen for seen in found.leaks), found.leaks
