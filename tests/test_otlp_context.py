"""Spans that are no model call (an agent, a tool, a retrieval) are kept as their chain's
context: the chain page shows them between the calls, in time order; a setting drops them;
deleting the chain's calls deletes them."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx2

from llmtap.store import Store
from llmtap.store._context import CONTEXT_BYTES
from tests.conftest import Project, Server, start_server, stop_server
from tests.test_dashboard_http import login
from tests.test_otlp_hostile import LEGACY, _answer, _body, _post, _spans

AGENT = {"_name": "plan trip", "openinference.span.kind": "AGENT", "input.value": "Paris?"}
TOOL = {"_name": "get_weather", "openinference.span.kind": "TOOL", "tool.parameters": "{}"}
HTTP = {"_name": "GET", "http.request.method": "GET", "url.full": "https://example.com/w"}


def _project(server: Server) -> tuple[str, Project]:
    name = f"context-{uuid.uuid4().hex[:8]}"
    return name, Project(server.new_key(name), server)


def _chain_page(name: str, project: Project, chain_id: str) -> str:
    with login(project.server) as browser:
        page = browser.get(f"/chains/{chain_id}", params={"project": name})
    assert page.status_code == 200, page.text[:300]
    return page.text


def test_context_spans_shown_between_calls_and_deleted_with_them(server: Server) -> None:
    name, project = _project(server)
    spans = _spans(AGENT, {"_name": "llm", **LEGACY}, TOOL, HTTP)
    answer = _answer(_post(project, _body(spans)))
    assert (
        "3 of 4 spans are not model calls: kept as context" in answer.partial_success.error_message
    )
    (call,) = project.events()
    page = _chain_page(name, project, call["chain_id"])
    assert "1 calls and 3 steps between them" in page
    # In time order: the agent (the root, started first), the call, the tool, the request.
    texts = ("plan trip", "hi there", "get_weather", "https://example.com/w")
    order = [page.index(text) for text in texts]
    assert order == sorted(order), order
    for kind in ("agent", "tool", "http"):
        assert f'<span class="badge">{kind}</span>' in page
    # Under the agent (the root): the call, the tool and the request, indented once.
    depths = re.findall(r'<li class="(?:context-step )?depth-(\d)">', page)
    assert depths == ["0", "1", "1", "1"], depths
    with login(server) as browser:  # where the call came from: the instrumentation's scope
        event_page = browser.get(f"/events/{call['id']}", params={"project": name}).text
    assert "sent by" in event_page and ">hand.made 1.2.3</a>" in event_page

    deleted = httpx2.delete(
        project.server.url + "/api/v1/events",
        params={"chain_id": call["chain_id"]},
        headers={"authorization": f"Bearer {project.key}"},
    )
    assert deleted.json()["deleted"] == 1, deleted.text
    assert "get_weather" not in _chain_page(name, project, call["chain_id"])


def test_context_spans_can_be_dropped(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"LLMTAP_OTLP_CONTEXT_SPANS": "0"})
    try:
        name, project = _project(server)
        spans = _spans(AGENT, {"_name": "llm", **LEGACY}, TOOL)
        answer = _answer(_post(project, _body(spans)))
        message = answer.partial_success.error_message
        assert message == "2 of 3 spans are not model calls and were not stored"
        (call,) = project.events()
        assert "steps between them" not in _chain_page(name, project, call["chain_id"])
    finally:
        stop_server(server)


def test_a_chain_reads_its_context_spans_within_a_byte_budget(store: Store) -> None:
    """A span's attributes are bounded each, not in number: a chain's page reads its spans'
    attributes up to ``CONTEXT_BYTES`` (one span at least), as a page of events is bounded."""
    project = store.ensure_project("p")
    third = CONTEXT_BYTES // 3 + 1
    rows = [
        ("t" * 32, f"{i:016x}", None, f"step {i}", "internal", 1_000 + i, 1.0, "ok",
         json.dumps({"text": str(i) * third}))
        for i in range(4)
    ]  # fmt: skip
    assert store.insert_context(project, rows) == 4
    read, left_out = store.chain_context(project, "t" * 32)
    # The newest, as a chain page shows its newest calls: the first is past the budget.
    assert [s["name"] for s in read] == ["step 1", "step 2", "step 3"] and left_out == 1
    (alone,), left_out = store.chain_context(project, "t" * 32, limit=1)
    assert alone["attributes"]["text"] == "3" * third and left_out == 3


def test_a_chain_reads_the_steps_of_the_calls_it_shows(store: Store) -> None:
    """``since_us``: the steps from the first call a page shows on, the newest first kept;
    what is left out is counted. A long trace's page had shown its first 500 steps beside
    its last 500 calls."""
    project = store.ensure_project("p")
    rows = [
        ("c" * 32, f"{i:016x}", None, f"step {i}", "tool", 1_000 + i, 1.0, "ok", "{}")
        for i in range(10)
    ]
    store.insert_context(project, rows)
    steps, left_out = store.chain_context(project, "c" * 32, limit=3, since_us=1_004)
    assert [s["name"] for s in steps] == ["step 7", "step 8", "step 9"] and left_out == 3
    steps, left_out = store.chain_context(project, "c" * 32, since_us=1_004)
    assert [s["started_us"] for s in steps] == list(range(1_004, 1_010)) and left_out == 0
    assert store.chain_context(project, "c" * 32, since_us=2_000) == ([], 0)
    assert store.chain_context(store.ensure_project("other"), "c" * 32) == ([], 0)
