"""Every form of the dashboard, fuzzed: each POST route the dashboard declares, logged in as
the owner with a valid CSRF token, gets fields drawn from every name its pages use, holding
numbers in every spelling ("²" passes ``str.isdigit`` and fails ``int``), huge and negative
ones, control characters, other scripts, long text and JSON nested too deep to parse; path
ids real or odd. Each answer is below 500, and the pages still answer after all of it."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from llmtap.server.dashboard import dashboard_routes

from ._stores import STORE_BACKENDS
from .conftest import Project, Server, start_server, stop_server
from .test_dashboard_http import csrf_of, login
from .test_server import event, post_events

# Ending the session, or changing the password the others log in with, would end the run's
# own session: the users tests cover those forms.
_SKIPPED = {"/login", "/logout", "/settings/password"}
FORMS = sorted(
    r.path
    for r in dashboard_routes()
    if isinstance(r, Route) and "POST" in (r.methods or ()) and r.path not in _SKIPPED
)

# Every field name the dashboard's forms and scripts send, and a few they could.
FIELDS = [
    "action", "attr", "baseline", "body", "by", "chat_id", "current", "days", "email",
    "env_only", "environment", "expected", "feedback_id", "from", "has_feedback", "id",
    "kind", "max_cost", "model", "name", "next", "password", "project", "prompt_template_name",
    "q", "range", "rating_max", "revision", "role", "scope", "sdk", "sort", "source", "status",
    "tags", "template", "template_revision", "testset", "to", "token", "concurrency",
    "evaluator", "measure", "threshold", "window", "limit_usd", "period", "group_by",
    "channel", "url", "op", "cooldown", "min_events", "severity", "expires_in_days",
    "allow_bodies", "panels", "title", "rating_min", "ids", "version", "retention_days",
]  # fmt: skip

_NUMBERISH = [
    "²", "٣", "9" * 30, "-1", "0", "1e309", "NaN", "inf", "-0", "0x10", " 7 ", "1_000", "3.5",
]  # fmt: skip
_values = (
    st.sampled_from(_NUMBERISH)
    | st.sampled_from(["alpha", "admin", "viewer", "feedback", "events", "cases", "on", "true"])
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
    | st.integers(1, 10).map(lambda n: "x" * (300 * n))
    | st.sampled_from(["[" * 1500 + "]" * 1500, '{"a":' * 1200 + "1" + "}" * 1200])  # too deep
)


@dataclass
class World:
    server: Server
    browser: httpx2.Client
    ids: dict[str, str]

    def csrf(self) -> str:
        return csrf_of(self.browser.get("/settings").text)


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A server of its own on each store backend (PostgreSQL refuses text SQLite takes, NUL)."""
    db = (
        request.getfixturevalue("postgres").fresh_database()
        if request.param == "postgresql"
        else None
    )
    server = start_server(tmp_path_factory.mktemp("form-fuzz"), db=db)
    key = server.new_key("alpha", scopes=("ingest", "read", "admin"))
    eid = str(uuid.uuid4())
    post_events(Project(key, server), [event(id=eid, feedback_key="fuzz-key")])
    auth = {"authorization": f"Bearer {key}"}
    with httpx2.Client(base_url=server.url, headers=auth, timeout=30) as api:
        case = {"input": [{"role": "user", "content": "hi"}], "output": "hello"}
        made = [
            api.post("/api/v1/testsets", json={"name": n, "source": "cases", "cases": [case]})
            for n in ("kept", "deleted")
        ]
        kept, deleted = (m.json()["testset"]["id"] for m in made)
        case_id = api.get(f"/api/v1/testsets/{kept}").json()["cases"][0]["id"]
        board = api.post("/api/v1/boards", json={"template": "openai-monitor"}).json()["id"]
        share = api.post(f"/api/v1/boards/{board}/shares", json={}).json()
    ids = {
        "event_id": eid,
        "testset_id": str(kept),
        "deleted_id": str(deleted),  # the delete form's: the others' set stays
        "case_id": str(case_id),
        "board_id": board,
        "share_id": str(share.get("id", "x")),
        "key_id": "1",
        "user_id": "2",  # not the owner's own: deleting oneself would end the run's session
        "token": "not-a-token",
    }
    with login(server) as browser:
        yield World(server, browser, ids)
    stop_server(server)


# Values each form takes (one for all: a form reads only its own fields).
SOUND = {
    "project": "alpha", "source": "events", "name": "fuzz", "role": "viewer", "scope": "read",
    "model": "gpt-4o-mini", "days": "30", "template": "Hi {x}", "expected": "ok", "tags": "a",
    "kind": "rule", "measure": "cost", "window": "1h", "threshold": "1", "title": "t",
    "email": "a@example.com", "action": "delete", "max_cost": "1", "concurrency": "2",
}  # fmt: skip
ANSWERS: Counter[tuple[str, int]] = Counter()  # (form, status): what the fuzz reached
_ODD_IDS = ["99999999999999999999", "0", "2", "abc", "%C2%B2", "..", "x" * 300]


def _path(template: str, real: dict[str, str], odd: str | None) -> str:
    """``template`` with each path parameter its real value, or ``odd`` (if it fits the
    parameter's converter, else the real one: a 404 from routing tests nothing)."""

    def fill(match: re.Match[str]) -> str:
        name, _, kind = match.group(1).partition(":")
        if odd is not None and (kind != "int" or (odd.isascii() and odd.isdigit())):
            return odd
        deleting = template.endswith("/delete") and name == "testset_id"
        return real["deleted_id" if deleting else name]

    return re.sub(r"\{([^}]+)\}", fill, template)


@pytest.mark.parametrize("form", FORMS)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    fields=st.dictionaries(st.sampled_from(FIELDS), _values, max_size=8),
    odd_id=st.none() | st.sampled_from(_ODD_IDS),
    sound=st.booleans(),
)
def test_any_form_post_answers_below_500(
    world: World, form: str, fields: dict[str, Any], odd_id: str | None, sound: bool
) -> None:
    """``sound``: the fields over a form every check but theirs would pass, so that the odd
    values reach the code past the first refusal."""
    data = {**SOUND, "testset": world.ids["testset_id"], **fields} if sound else fields
    data["csrf_token"] = world.csrf()
    path = _path(form, world.ids, odd_id)
    answer = world.browser.post(path, data=data, timeout=60)
    assert answer.status_code < 500, (path, data, answer.text[:500])
    ANSWERS[form, answer.status_code] += 1


_TOO_DEEP = "[" * 1500 + "]" * 1500  # JSON nested past what Python's parser takes
_WORST = ["²", "9" * 30, "1e309", "NaN", "-1", "\x00", "x" * 3000, _TOO_DEEP]


@pytest.mark.parametrize("form", FORMS)
def test_each_field_of_each_form_takes_each_odd_value(world: World, form: str) -> None:
    """Systematic where the fuzz is random: every field, one at a time, with each of the
    worst values, over a form whose other fields are sound."""
    path = _path(form, world.ids, None)
    csrf = world.csrf()
    for field in FIELDS:
        for value in _WORST:
            data = {**SOUND, "testset": world.ids["testset_id"], field: value, "csrf_token": csrf}
            answer = world.browser.post(path, data=data, timeout=60)
            assert answer.status_code < 500, (path, field, value, answer.text[:500])
            ANSWERS[form, answer.status_code] += 1


def test_after_the_fuzz_the_pages_still_answer(world: World) -> None:
    # The fuzz reached past the first refusal: some forms did their work.
    assert sum(n for (_, status), n in ANSWERS.items() if status in (200, 303)) >= 100, ANSWERS
    for page in ("/", "/events", "/settings", "/alerts", "/boards", "/testsets", "/feedback"):
        answer = world.browser.get(page, params={"project": "alpha"})
        assert answer.status_code in (200, 303), (page, answer.text[:500])
