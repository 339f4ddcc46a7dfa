"""Hostile input to the test-set and run endpoints, against a real ``llmtap serve``: whatever
is sent (JSON of any shape, JSON lines of any text, ids past the database's integers, lone
surrogates, deep nesting), the answer is a 4xx in the one error shape, or a success; never a
5xx, and the server goes on serving. Keys without the scope are refused."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._stores import STORE_BACKENDS
from .conftest import Project, Server, server_on_each_backend

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Text the JSON parser lets through that is not Unicode, and shapes near the real ones.
_ODD_TEXT = st.one_of(
    st.text(max_size=30), st.just("\ud800"), st.just("x" * 2000), st.just("{sport}")
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _ODD_TEXT,
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = [
    "name",
    "source",
    "evaluators",
    "feedback_ids",
    "template",
    "filter",
    "threshold",
    "cases",
    "template_params",
    "tags",
    "expected",
    "expected_kind",
    "rating",
    "input",
    "output",
    "event_id",
    "id",
    "testset",
    "config",
    "results",
    "case_id",
    "scores",
    "status",
    "summary",
    "cost_usd",
]
_BODIES = st.one_of(_JSON, st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=6))


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.under_500 = 0


TALLY = Tally()


def _check(response: httpx2.Response) -> None:
    TALLY.sent += 1
    assert response.status_code < 500, response.text
    TALLY.under_500 += 1
    if response.status_code >= 400:
        body = response.json()
        assert body["ok"] is False and body["status"] == response.status_code, body
        assert isinstance(body["error"], str) and isinstance(body["errors"], list)


def _raw(value: Any) -> bytes:
    # allow_nan: NaN and Infinity are what a hostile client may send too.
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _target(project: Project) -> tuple[int, int, str]:
    """A set with a case, and a run of it, to aim at."""
    server = project.server
    name = f"target-{uuid.uuid4().hex[:6]}"
    made = server.post("/api/v1/testsets", project.key, json={"name": name, "source": "cases"})
    testset_id = made.json()["testset"]["id"]
    line = json.dumps({"output": "x", "rating": 1.0, "template_params": {"a": 1}}) + "\n"
    server.post(
        f"/api/v1/testsets/{testset_id}/cases",
        project.key,
        headers={"content-type": "application/x-ndjson"},
        content=line,
    )
    case_id = server.get(f"/api/v1/testsets/{testset_id}", project.key).json()["cases"][0]["id"]
    run_id = f"r{uuid.uuid4().hex[:8]}"
    run = {"id": run_id, "testset": testset_id, "config": {}}
    assert server.post("/api/v1/runs", project.key, json=run).status_code == 201
    return testset_id, case_id, run_id


def test_hostile_json_bodies_get_a_4xx(project: Project) -> None:
    testset_id, case_id, run_id = _target(project)
    headers = {"authorization": f"Bearer {project.key}", "content-type": "application/json"}
    targets = [
        ("POST", "/api/v1/testsets"),
        ("POST", f"/api/v1/testsets/{testset_id}/cases"),
        ("PATCH", f"/api/v1/testsets/{testset_id}/cases/{case_id}"),
        ("POST", "/api/v1/runs"),
        ("POST", f"/api/v1/runs/{run_id}/results"),
        ("PATCH", f"/api/v1/runs/{run_id}"),
    ]
    with httpx2.Client(base_url=project.server.url, headers=headers, timeout=30) as http:

        @_SETTINGS
        @given(body=_BODIES, target=st.sampled_from(targets))
        def hostile(body: Any, target: tuple[str, str]) -> None:
            method, path = target
            _check(http.request(method, path, content=_raw(body)))

        hostile()
        # Cases named by their own id, and results of cases the set does not have.
        sent = {"results": [{"case_id": 2**63 - 1, "output": "x"}]}
        _check(http.post(f"/api/v1/runs/{run_id}/results", content=_raw(sent)))
        for path in (f"/api/v1/testsets/{2**64}", f"/api/v1/testsets/{testset_id}/cases/{2**64}"):
            _check(http.get(path))
            _check(http.delete(path))
    assert project.server.get("/healthz", project.key).status_code == 200


def test_results_only_for_the_runs_own_cases(project: Project) -> None:
    _, case_id, run_id = _target(project)
    _, strange_id, _ = _target(project)  # a case of another set of the same project
    server, key = project.server, project.key
    path = f"/api/v1/runs/{run_id}/results"
    sent = {"results": [{"case_id": case_id, "output": "x"}, {"case_id": strange_id}]}
    refused = server.post(path, key, json=sent)
    assert refused.status_code == 400 and f"test set: [{strange_id}]" in refused.text
    assert server.post(path, key, json={"results": sent["results"][:1]}).json()["stored"] == 1
    stored = server.get(f"/api/v1/runs/{run_id}", key, raw=1).json()["results"]
    assert [r["case_id"] for r in stored] == [case_id]
    elsewhere = server.post("/api/v1/runs/no-such-run/results", key, json=sent)
    assert elsewhere.status_code == 404


def test_hostile_json_lines_get_a_4xx(project: Project) -> None:
    testset_id, _, _ = _target(project)
    headers = {
        "authorization": f"Bearer {project.key}",
        "content-type": "application/x-ndjson",
    }
    lines = st.one_of(
        _JSON.map(lambda v: _raw(v).decode("utf-8", "surrogatepass")),
        st.text(max_size=40),
        st.builds(
            lambda d: json.dumps(d),
            st.fixed_dictionaries({}, optional={f: _JSON for f in _FIELDS[8:18]}),
        ),
    )
    with httpx2.Client(base_url=project.server.url, headers=headers, timeout=30) as http:

        @_SETTINGS
        @given(body=st.lists(lines, min_size=1, max_size=5), garbage=st.binary(max_size=20))
        def hostile(body: list[str], garbage: bytes) -> None:
            text = "\n".join(body).encode("utf-8", "surrogatepass") + garbage
            _check(http.post(f"/api/v1/testsets/{testset_id}/cases", content=text))

        hostile()
        deep = "[" * 100_000 + "]" * 100_000
        _check(http.post(f"/api/v1/testsets/{testset_id}/cases", content=deep.encode()))
    print(f"\nhostile test-set input: {TALLY.sent} requests, {TALLY.under_500} answered < 500")


def test_each_scope_does_what_it_may(server: Server) -> None:
    name = f"scopes-{uuid.uuid4().hex[:6]}"
    admin = Project(server.new_key(name), server)
    testset_id, case_id, run_id = _target(admin)
    reader, ingest = (
        server.new_key(name, scopes=("read",)),
        server.new_key(name, scopes=("ingest",)),
    )
    stranger = server.new_key(scopes=("read", "admin"))
    found = server.get(f"/api/v1/testsets/{testset_id}", reader)
    assert found.status_code == 200 and found.json()["cases"][0]["id"] == case_id
    assert server.get(f"/api/v1/runs/{run_id}", reader).status_code == 200
    refused = server.post("/api/v1/testsets", reader, json={"name": "x"})
    assert refused.status_code == 403 and "'admin'" in refused.json()["error"]
    assert server.get("/api/v1/testsets", ingest).status_code == 403
    # Another project's key sees nothing of this one, as if it did not exist.
    assert server.get(f"/api/v1/testsets/{testset_id}", stranger).status_code == 404
    assert server.get(f"/api/v1/runs/{run_id}", stranger).status_code == 404
    gone = httpx2.delete(
        f"{server.url}/api/v1/testsets/{testset_id}",
        headers={"authorization": f"Bearer {stranger}"},
    )
    assert gone.status_code == 404
    assert server.get(f"/api/v1/testsets/{testset_id}", reader).status_code == 200


def test_a_run_is_refused_a_taken_id_and_a_set_it_cannot_see(project: Project) -> None:
    server = project.server
    testset_id, _, run_id = _target(project)
    again = server.post("/api/v1/runs", project.key, json={"id": run_id, "testset": testset_id})
    assert again.status_code == 409 and run_id in again.json()["error"]
    stranger = Project(server.new_key(), server)  # another project's key
    theirs = server.post("/api/v1/runs", stranger.key, json={"id": "r-new", "testset": testset_id})
    assert theirs.status_code == 404 and "no test set" in theirs.json()["error"]
    gone = server.post("/api/v1/runs", project.key, json={"id": "r-new", "testset": 2**62})
    assert gone.status_code == 404
    # Neither refusal left a run behind.
    assert server.get("/api/v1/runs/r-new", project.key).status_code == 404
    assert server.get("/api/v1/runs/r-new", stranger.key).status_code == 404


def test_numbers_a_run_cannot_hold_are_refused_and_reads_stay_whole(project: Project) -> None:
    """NaN, Infinity, a number past a float's range, words where the pages and summaries
    compute with numbers: each a 400, and every read of the project's runs still answers."""
    server = project.server
    testset_id, case_id, run_id = _target(project)
    result = '{"results": [{"case_id": %d, "scores": {"exact": {"score": %s}}}]}'
    refused = [
        ("POST", "/api/v1/runs", '{"id": "r-nan", "testset": %d, "config": {"x": NaN}}'),
        ("POST", "/api/v1/runs", '{"id": "r-big", "testset": %d, "config": {"x": 1e999}}'),
        ("PATCH", f"/api/v1/runs/{run_id}", '{"status": "stopped", "summary": {"pass_rate": "x"}}'),
        ("PATCH", f"/api/v1/runs/{run_id}", '{"status": "stopped", "summary": {"cost_usd": true}}'),
        ("PATCH", f"/api/v1/runs/{run_id}", '{"status": "stopped", "summary": {"done": Infinity}}'),
        ("PATCH", f"/api/v1/runs/{run_id}", '{"status": "stopped", "summary": {"latency_ms": 3}}'),
        (
            "PATCH",
            f"/api/v1/runs/{run_id}",
            '{"status": "stopped", "summary": {"mean_scores": {"a": "b"}}}',
        ),
        (
            "PATCH",
            f"/api/v1/runs/{run_id}",
            '{"status": "stopped", "summary": {"total": %s}}' % (10**400),
        ),
        ("POST", f"/api/v1/runs/{run_id}/results", result % (case_id, '"a"')),
        ("POST", f"/api/v1/runs/{run_id}/results", result % (case_id, "-Infinity")),
        ("POST", f"/api/v1/runs/{run_id}/results", result % (case_id, "1e400")),
        # Finite, yet past what a sum or a page can hold, or of a shape a page cannot read.
        ("POST", f"/api/v1/runs/{run_id}/results", result % (case_id, "1e308")),
        ("POST", f"/api/v1/runs/{run_id}/results", result % (case_id, "-0.5")),
        (
            "POST",
            f"/api/v1/runs/{run_id}/results",
            json.dumps({"results": [{"case_id": case_id, "cost_usd": 1e308}]}),
        ),
        (
            "POST",
            f"/api/v1/runs/{run_id}/results",
            json.dumps({"results": [{"case_id": case_id, "scores": {"x": {"detail": "oops"}}}]}),
        ),
        (
            "POST",
            "/api/v1/runs",
            '{"id": "r-word", "testset": %d, "config": {"estimate_usd": "lots"}}',
        ),
        (
            "POST",
            "/api/v1/runs",
            '{"id": "r-cap", "testset": %d, "config": {"max_cost_usd": 1e300}}',
        ),
        (
            "POST",
            "/api/v1/runs",
            '{"id": "r-deep", "testset": %d, "config": {"x": ' + "[" * 500 + "]" * 500 + "}}",
        ),
        (
            "POST",
            "/api/v1/testsets",
            '{"name": "s1", "source": "events", "filter": {"model": "\\ud800"}}',
        ),
        ("POST", "/api/v1/testsets", '{"name": "s2", "evaluators": ["regex:\\ud800"]}'),
        (
            "POST",
            "/api/v1/testsets",
            '{"name": "s3", "evaluators": ["json_schema:{\\"$ref\\": \\"file:///etc/passwd\\"}"]}',
        ),
    ]
    headers = {"authorization": f"Bearer {project.key}", "content-type": "application/json"}
    with httpx2.Client(base_url=server.url, headers=headers, timeout=30) as http:
        for method, path, body in refused:
            text = body % testset_id if "%d" in body else body
            answer = http.request(method, path, content=text.encode())
            assert answer.status_code == 400, (path, text, answer.text)
        fine = result % (case_id, "0.5")
        assert http.post(f"/api/v1/runs/{run_id}/results", content=fine.encode()).is_success
        for path in ("/api/v1/runs", f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}?raw=1"):
            assert http.get(path).status_code == 200, path
        assert not [
            t
            for t in http.get("/api/v1/testsets").json()["testsets"]
            if t["name"][:2] in ("s1", "s2", "s3")
        ]


def test_json_lines_break_at_newlines_only(project: Project) -> None:
    """The feedback download keeps U+2028 and the like raw inside its strings, and a file
    saved on Windows starts with a BOM and ends its lines with CRLF: each imports as sent."""
    server = project.server
    made = server.post(
        "/api/v1/testsets", project.key, json={"name": f"lines-{uuid.uuid4().hex[:6]}"}
    )
    testset_id = made.json()["testset"]["id"]
    outputs = ["para one\u2028para two", "next\x85line", "plain"]
    body = (
        "\ufeff"
        + "\r\n".join(json.dumps({"output": o, "rating": 1.0}, ensure_ascii=False) for o in outputs)
        + "\r\n"
    )
    added = server.post(
        f"/api/v1/testsets/{testset_id}/cases",
        project.key,
        headers={"content-type": "application/x-ndjson"},
        content=body.encode(),
    )
    assert added.status_code == 200, added.text
    cases = server.get(f"/api/v1/testsets/{testset_id}", project.key).json()["cases"]
    assert sorted(c["original_output"] for c in cases) == sorted(outputs)


def test_an_id_of_thousands_of_digits_is_a_404_not_a_500(server: Server) -> None:
    """Python's ``int`` refuses text past 4,300 digits: such a path matches no route."""
    huge = "9" * 4301
    for path in (f"/testsets/{huge}", f"/api/v1/testsets/{huge}", f"/testsets/1/cases/{huge}"):
        answer = httpx2.get(server.url + path, headers={"accept": "application/json"})
        assert answer.status_code == 404, (path, answer.text[:300])


def test_a_set_whose_cases_are_refused_is_not_made(project: Project) -> None:
    """Cases the store cannot keep (nested past 100 levels) are refused before their set is
    made: the request leaves no empty set behind."""
    deep: Any = "x"
    for _ in range(150):
        deep = [deep]
    name = f"deep-{uuid.uuid4().hex[:6]}"
    case = {"input": [{"role": "user", "content": "hi"}], "output": "ok", "expected": None,
            "template_params": {"deep": deep}}  # fmt: skip
    body = {"name": name, "source": "cases", "cases": [case]}
    refused = project.server.post("/api/v1/testsets", project.key, json=body)
    assert refused.status_code == 400 and "invalid cases" in refused.text, refused.text
    listed = project.server.get("/api/v1/testsets", project.key).json()["testsets"]
    assert name not in [s["name"] for s in listed]
