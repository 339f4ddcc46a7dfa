"""Prompt tests from the dashboard (issue 15): sets made, edited and removed through its
forms, and replays and runs started from its pages through a provider configured for the
server (whose key is in no page, answer or database)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from llmtap.fake_provider import FakeProvider
from llmtap.store import open_store

from .conftest import Project, Server, start_server, stop_server
from .test_dashboard_http import csrf_of, login
from .test_prompt_tests import _production


def test_the_dashboard_makes_edits_and_removes_sets(server: Server, provider: FakeProvider) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"forms-{tag}"
    project = Project(server.new_key(name), server)
    template_name = _production(project, provider, tag)
    with login(server) as browser:
        page = browser.get("/feedback", params={"project": name})
        assert 'action="/testsets"' in page.text
        form = {"csrf_token": csrf_of(page.text), "project": name}
        made = browser.post(
            "/testsets",
            data={**form, "source": "feedback", "name": "from feedback", "template": template_name},
        )
        assert made.status_code == 303, made.text
        testset_id = int(made.headers["location"].split("?")[0].rsplit("/", 1)[1])
        again = browser.post(
            "/testsets", data={**form, "source": "feedback", "name": "from feedback"}
        )
        assert again.status_code == 409
        stored = project.server.get(f"/api/v1/testsets/{testset_id}", project.key).json()
        assert len(stored["cases"]) == 4 and stored["version"] == 1
        # A selection: only the feedback ticked on the page.
        boxes = LexborHTMLParser(page.text).css("input[name=feedback_id]")
        assert len(boxes) == 4
        ticked = [b.attributes["value"] or "" for b in boxes[:2]]
        selected = browser.post(
            "/testsets",
            data={**form, "source": "feedback", "name": "ticked", "feedback_id": ticked},
        )
        assert selected.status_code == 303, selected.text
        picked_id = int(selected.headers["location"].split("?")[0].rsplit("/", 1)[1])
        picked = project.server.get(f"/api/v1/testsets/{picked_id}", project.key).json()
        assert len(picked["cases"]) == 2
        first, second = stored["cases"][0]["id"], stored["cases"][1]["id"]
        edited = browser.post(
            f"/testsets/{testset_id}/cases/{first}",
            data={**form, "expected": "🥅", "tags": " goal, sports ,", "action": "save"},
        )
        assert edited.status_code == 303, edited.text
        removed = browser.post(
            f"/testsets/{testset_id}/cases/{second}", data={**form, "action": "delete"}
        )
        assert removed.status_code == 303, removed.text
        stored = project.server.get(f"/api/v1/testsets/{testset_id}", project.key).json()
        assert [c["id"] for c in stored["cases"]][:1] == [first] and len(stored["cases"]) == 3
        case = stored["cases"][0]
        assert case["expected"] == "🥅" and case["expected_kind"] == "better"
        assert case["tags"] == ["goal", "sports"] and stored["version"] == 3
        # From the events page's filters: the same four calls, without feedback needed.
        events = browser.get(
            "/events", params={"project": name, "prompt_template_name": template_name}
        )
        assert "Add to test set" in events.text and "the test set from feedback" in events.text
        by_filter = browser.post(
            "/testsets",
            data={
                **form,
                "source": "events",
                "name": "from events",
                "prompt_template_name": template_name,
            },
        )
        assert by_filter.status_code == 303, by_filter.text
        sets = {
            s["name"]: s
            for s in project.server.get("/api/v1/testsets", project.key).json()["testsets"]
        }
        assert sets["from events"]["case_count"] == 4
        # The same filters into the existing set: its three calls are there already, the one
        # removed above comes back.
        into = browser.post(
            "/testsets",
            data={
                **form,
                "source": "events",
                "testset": str(testset_id),
                "prompt_template_name": template_name,
            },
        )
        assert into.status_code == 303 and f"/testsets/{testset_id}" in into.headers["location"]
        for odd in ("²", "٣", "9" * 30):  # digits to isdigit(), not all of them to int()
            bad = browser.post("/testsets", data={**form, "source": "events", "testset": odd})
            assert bad.status_code == 400, (odd, bad.text)
        grown = project.server.get(f"/api/v1/testsets/{testset_id}", project.key).json()
        assert len(grown["cases"]) == 4 and second not in [c["id"] for c in grown["cases"]]
        # Tags saved on the case rated badly with no better response (its form sends an
        # empty expected output): it still must differ from its original, and the rated-well
        # one still expects its original output.
        events_set = sets["from events"]["id"]
        stored = project.server.get(f"/api/v1/testsets/{events_set}", project.key).json()
        kinds = {c["expected_kind"]: c for c in stored["cases"]}
        for kind in ("differ", "output"):
            shown = kinds[kind]
            saved = browser.post(
                f"/testsets/{events_set}/cases/{shown['id']}",
                data={**form, "expected": shown["expected"] or "", "tags": "t", "action": "save"},
            )
            assert saved.status_code == 303, saved.text
        after = project.server.get(f"/api/v1/testsets/{events_set}", project.key).json()
        for case in after["cases"]:
            if case["id"] in (kinds["differ"]["id"], kinds["output"]["id"]):
                before = kinds[case["expected_kind"]]
                assert (case["expected"], case["tags"]) == (before["expected"], ["t"])
        assert [c["expected_kind"] for c in after["cases"]] == [
            c["expected_kind"] for c in stored["cases"]
        ]
        gone = browser.post(f"/testsets/{testset_id}/delete", data=form)
        assert gone.status_code == 303
        assert project.server.get(f"/api/v1/testsets/{testset_id}", project.key).status_code == 404
        missing = browser.post(
            f"/testsets/{testset_id}/cases/{first}", data={**form, "action": "delete"}
        )
        assert missing.status_code == 404


SECRET = "sk-provider-secret-" + uuid.uuid4().hex


def _finished_runs(server: Server, key: str, count: int) -> list[dict[str, Any]]:
    """The project's runs once there are ``count``, all finished (they run in the background)."""
    deadline, runs = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        runs = server.get("/api/v1/runs", key).json()["runs"]
        if len(runs) == count and all(r["status"] == "finished" for r in runs):
            return runs  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"not {count} finished runs: {runs}")


def test_replays_and_runs_from_the_dashboard_use_the_server_s_provider(
    tmp_path: Path, provider: FakeProvider
) -> None:
    """With a provider configured at start, the event page replays and the set page runs;
    the provider key is in no page, no answer and not in the database."""
    server = start_server(
        tmp_path,
        {"LLMTAP_PROVIDER_API_KEY": SECRET, "LLMTAP_PROVIDER_BASE_URL": provider.base_url},
    )
    try:
        tag = uuid.uuid4().hex[:8]
        name = f"served-{tag}"
        project = Project(server.new_key(name), server)
        template_name = _production(project, provider, tag)
        original = project.events(prompt_template_name=template_name)[0]
        made = server.post(
            "/api/v1/testsets",
            project.key,
            json={"name": "served", "source": "feedback", "template": template_name},
        )
        testset_id = made.json()["testset"]["id"]
        # Whatever the sport, now; a U+2028 in the answer is no end of the replay's line.
        provider.script({f"{tag} Emoji for": "🏅\u2028"})
        with login(server) as browser:
            page = browser.get(f"/events/{original['id']}", params={"project": name})
            assert "/replay" in page.text and "llmtap replay" not in page.text
            form = {"csrf_token": csrf_of(page.text), "project": name}
            replayed = browser.post(
                f"/events/{original['id']}/replay", data={**form, "model": "gpt-4o-mini"}
            )
            assert replayed.status_code == 200, replayed.text
            assert "🏅" in replayed.text and original["output_text"] in replayed.text
            ran = browser.post(f"/testsets/{testset_id}/run", data={**form, "model": "gpt-4o-mini"})
            assert ran.status_code == 303, ran.text
            runs = _finished_runs(server, project.key, 1)
            # The replay is an event linked to the original; the run's calls are recorded.
            children = [
                e
                for e in project.events(environment="dashboard")
                if e.get("parent_event_id") == original["id"]
            ]
            assert len(children) == 1 and children[0]["output_text"] == "🏅\u2028"
            view = server.get(f"/api/v1/runs/{runs[0]['id']}", project.key).json()
            assert view["summary"]["done"] == 4
            shown = [
                browser.get(p, params={"project": name}).text
                for p in ("/settings", f"/testsets/{testset_id}", f"/runs/{runs[0]['id']}")
            ]
            assert not any(SECRET in text for text in shown)
            # A stored revision of the cases' template, chosen on the set's page.
            options = LexborHTMLParser(shown[1]).css("select[name=revision] option")
            revision = next(o.attributes["value"] for o in options if o.attributes["value"])
            assert revision
            both = browser.post(
                f"/testsets/{testset_id}/run",
                data={**form, "revision": revision, "template": "Emoji for {sport}"},
            )
            assert both.status_code == 400
            chosen = browser.post(
                f"/testsets/{testset_id}/run", data={**form, "revision": revision}
            )
            assert chosen.status_code == 303, chosen.text
            runs = _finished_runs(server, project.key, 2)
            labels = {r["config"].get("template_label") for r in runs}
            assert revision in labels, runs
            # A set whose name reads like an option is the command's argument all the same.
            dashed = server.post(
                "/api/v1/testsets",
                project.key,
                json={"name": "--model=nope", "source": "feedback", "template": template_name},
            ).json()["testset"]["id"]
            assert browser.post(f"/testsets/{dashed}/run", data=form).status_code == 303
            runs = _finished_runs(server, project.key, 3)
            assert [r["config"].get("model") for r in runs if r["testset_id"] == dashed] == [None]
            # A run that cannot start says why on the set's page: at once when the set's
            # evaluators cannot run here, else once its job has failed.
            capped = browser.post(
                f"/testsets/{testset_id}/run",
                data={**form, "model": "no-price-model", "max_cost": "1"},
            )
            assert capped.status_code == 303, capped.text
            deadline, page_text = time.monotonic() + 60, ""
            while time.monotonic() < deadline and "could not run" not in page_text:
                page_text = browser.get(f"/testsets/{testset_id}", params={"project": name}).text
                time.sleep(0.2)
            assert "could not run" in page_text and "needs a price" in page_text
            assert SECRET not in page_text
            store = open_store(str(server.db))
            try:
                pid = store.project_id(name)
                assert pid is not None
                coded = store.create_testset(pid, "coded", ["python:os:getcwd"])
            finally:
                store.close()
            refused = browser.post(f"/testsets/{coded}/run", data=form)
            assert refused.status_code == 400 and "runs code" in refused.text
        # The jobs' keys were revoked when they ended (the run's, once its process exits,
        # a moment after it stored its status).
        store = open_store(str(server.db))
        try:
            pid = store.project_id(name)
            assert pid is not None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                jobs = [k for k in store.list_keys(pid) if k["environment"] == "dashboard"]
                if all(k["revoked_at"] for k in jobs):
                    break
                time.sleep(0.1)
            assert len(jobs) == 5 and all(k["revoked_at"] for k in jobs), jobs
        finally:
            store.close()
    finally:
        log = stop_server(server)
    assert SECRET not in log
    for path in tmp_path.iterdir():
        if path.name.startswith("llmtap.db"):
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_run_says_which_version_of_its_set_it_ran(server: Server) -> None:
    """Cases added between two runs make them differ in more than their template or model:
    each run names the set's version it ran (the API, the run page, the set's list of runs),
    and comparing runs of two versions says so."""
    name = f"versions-{uuid.uuid4().hex[:8]}"
    project = Project(server.new_key(name), server)
    made = server.post("/api/v1/testsets", project.key, json={"name": "v", "source": "cases"})
    testset_id = made.json()["testset"]["id"]

    def add_case(sport: str) -> None:
        line = json.dumps({"output": "x", "rating": 1.0, "template_params": {"s": sport}})
        ndjson = {"content-type": "application/x-ndjson"}
        path = f"/api/v1/testsets/{testset_id}/cases"
        added = server.post(path, project.key, headers=ndjson, content=line + "\n")
        assert added.status_code == 200, added.text

    def new_run() -> str:
        run_id = f"r{uuid.uuid4().hex[:8]}"
        run = {"id": run_id, "testset": testset_id, "config": {}}
        assert server.post("/api/v1/runs", project.key, json=run).status_code == 201
        return run_id

    add_case("golf")
    first = new_run()
    add_case("chess")
    second = new_run()
    view = server.get(f"/api/v1/runs/{second}", project.key, baseline=first).json()
    assert view["versions"] == {"run": 2, "baseline": 1, "set": 2}
    with login(server) as browser:
        page = browser.get(f"/runs/{second}", params={"project": name, "baseline": first})
        assert page.status_code == 200
        assert f"Run {first} ran version 1 of the set, this one version 2" in page.text
        alone = browser.get(f"/runs/{first}", params={"project": name})
        assert "Version 1 of the set (now at version 2)" in alone.text
        assert "ran version" not in alone.text
        listed = LexborHTMLParser(
            browser.get(f"/testsets/{testset_id}", params={"project": name}).text
        )
        versions = {
            row.css_first("td a").text(): row.css_first("td:nth-child(3)").text()
            for row in listed.css("table.events tbody tr")
            if row.css_first("td a") is not None
        }
        assert versions == {first: "1", second: "2"}


def test_a_big_set_and_its_run_are_shown_a_page_of_cases_at_a_time(server: Server) -> None:
    """Tens of thousands of cases would be a page of tens of megabytes: 500 a page, with
    links to the pages beside it; a page past the last shows the last."""
    name = f"big-{uuid.uuid4().hex[:6]}"
    key = server.new_key(name)
    case = {"input": [{"role": "user", "content": "hi"}], "output": "ok"}
    body = {"name": "big", "source": "cases", "cases": [case] * 1203}
    made = server.post("/api/v1/testsets", key, json=body)
    assert made.status_code == 201, made.text
    testset = made.json()["testset"]
    run = {"id": f"r{uuid.uuid4().hex[:8]}", "testset": testset["id"], "config": {}}
    assert server.post("/api/v1/runs", key, json=run).status_code == 201
    with login(server) as browser:
        for path in (f"/testsets/{testset['id']}", f"/runs/{run['id']}"):
            pages = {}
            for page in ("1", "3", "99"):
                answer = browser.get(path, params={"project": name, "page": page})
                assert answer.status_code == 200, answer.text[:300]
                pages[page] = LexborHTMLParser(answer.text)
            rows = [len(p.css("table.events")[-1].css("tbody tr")) for p in pages.values()]
            assert rows == [500, 203, 203], (path, rows)
            pager = pages["1"].css_first("p.pager").text()
            assert "Cases 1 to 500 of 1,203." in pager and "next" in pager
            assert "previous" in pages["3"].css_first("p.pager").text()
            bad = browser.get(path, params={"project": name, "page": "²"})
            assert bad.status_code == 400
            # The download ("Download the run (JSON)"): every case, as the API has them.
            whole = browser.get(path, params={"project": name, "format": "json"}).json()
            cases = whole["cases"] if path.startswith("/runs/") else whole["testset"]["cases"]
            assert len(cases) == 1203 and whole["paging"]["total"] == 1203


def test_long_parameters_and_outputs_are_cut_on_the_pages_and_whole_in_the_download(
    server: Server,
) -> None:
    name = f"long-{uuid.uuid4().hex[:6]}"
    key = server.new_key(name)
    long = "x" * 100_000
    case = {"input": [{"role": "user", "content": "hi"}], "params": {"doc": long}, "output": long}
    made = server.post(
        "/api/v1/testsets", key, json={"name": "l", "source": "cases", "cases": [case] * 20}
    )
    assert made.status_code == 201, made.text
    testset = made.json()["testset"]
    with login(server) as browser:
        page = browser.get(f"/testsets/{testset['id']}", params={"project": name})
        whole = browser.get(
            f"/testsets/{testset['id']}", params={"project": name, "format": "json"}
        )
    assert page.status_code == 200 and "98,000 more characters" in page.text
    assert len(page.text) < 400_000, len(page.text)  # 20 cases of 200 KB each: 4 MB whole
    assert whole.json()["testset"]["cases"][0]["original_output"] == long
