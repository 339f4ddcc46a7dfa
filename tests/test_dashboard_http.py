"""The dashboard's door, over plain HTTP: login, sessions, CSRF, refusing to bind beyond
loopback without a credential, and pages that are the JSON API rendered."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llmtap.server.dashboard.pages import MAX_DEPTH, _in_time_order, _with_depths
from llmtap.server.otlp.common import event_id
from llmtap.store import open_store

from .conftest import ADMIN_PASSWORD, ADMIN_TOKEN, ADMIN_USER, LLMTAP, Project, Server, free_port
from .test_server import event, post_events


@contextmanager
def login(server: Server, token: str = ADMIN_TOKEN) -> Iterator[httpx2.Client]:
    """A browser logged in as the server's first admin (the owner), as a person would: the
    first time, with the admin token that makes that user; then with the user's password. A
    ``token`` other than the server's ends up not logged in (as a wrong token, or a wrong
    password once the user exists)."""
    with httpx2.Client(base_url=server.url, headers={"accept": "text/html"}) as browser:
        browser.post("/login", data=login_form(browser, token))
        yield browser


def login_form(browser: httpx2.Client, token: str = ADMIN_TOKEN, next: str = "/") -> dict:
    """What the login page asks this browser for, filled in for the first admin."""
    page = browser.get("/login").text
    form = {"csrf_token": csrf_of(page), "name": ADMIN_USER, "next": next}
    if 'name="token"' in page:
        form.update(token=token, password=ADMIN_PASSWORD)
    else:
        form.update(password=ADMIN_PASSWORD if token == ADMIN_TOKEN else token)
    return form


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_pages_need_login(server: Server) -> None:
    for path in ["/", "/events", "/settings", "/feedback"]:
        response = httpx2.get(server.url + path, headers={"accept": "text/html"})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    assert httpx2.get(server.url + "/events?format=json").status_code == 401


def test_wrong_token_and_missing_csrf_are_refused(server: Server) -> None:
    with login(server, token="not-it") as browser:
        assert browser.get("/events").status_code == 303
    with httpx2.Client(base_url=server.url) as fresh:
        fresh.get("/login")
        refused = fresh.post("/login", data={"csrf_token": "forged", "token": ADMIN_TOKEN})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]


def test_page_and_json_come_from_one_query(server: Server, project: Project) -> None:
    post_events(project, [event(model="page-model")])
    project_name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get("/events", params={"project": project_name})
        as_json = browser.get("/events", params={"project": project_name, "format": "json"}).json()
    assert page.status_code == 200 and "page-model" in page.text
    assert [e["model"] for e in as_json["events"]] == ["page-model"]
    # The page lists summaries: the API's events, less what can be large.
    full = project.events()
    assert [e["id"] for e in as_json["events"]] == [e["id"] for e in full]
    for summary, whole in zip(as_json["events"], full, strict=True):
        assert summary.pop("summary") is True and "request" not in summary
        assert summary == {k: v for k, v in whole.items() if k in summary}
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_keys_created_and_revoked_from_settings(server: Server) -> None:
    with login(server) as browser:
        settings = browser.get("/settings")
        created = browser.post(
            "/settings/keys",
            data={
                "csrf_token": csrf_of(settings.text),
                "project": "from-settings",
                "environment": "prod",
                "scope": ["ingest", "read"],
            },
        )
        key = re.search(r"(lt_[A-Za-z0-9_-]{20,})", created.text)
        assert key, created.text
        assert server.get("/api/v1/events", key.group(1)).status_code == 200
        assert created.headers["cache-control"] == "no-store"  # shown once, kept nowhere
        # Asked for as JSON, the key is in the answer (it had been made and never shown).
        as_json = browser.post(
            "/settings/keys?format=json",
            data={"csrf_token": csrf_of(settings.text), "project": "from-settings"},
        )
        assert as_json.headers["cache-control"] == "no-store"
        made = as_json.json()["new_key"]
        assert server.post("/api/v1/events", made, json={"events": []}).status_code == 200
        for environment in ("new\nline", "e" * 201):  # each event of the key would carry it
            refused = browser.post(
                "/settings/keys",
                data={
                    "csrf_token": csrf_of(settings.text),
                    "project": "from-settings",
                    "environment": environment,
                },
            )
            assert refused.status_code == 400, refused.text[:200]
        section = created.text.split("<h3>from-settings")[1].split("</section>")[0]
        key_id = re.findall(r"/settings/keys/(\d+)/revoke", section)[0]
        # Without the CSRF token a revoke is refused; with it, the key stops working.
        assert (
            browser.post(
                f"/settings/keys/{key_id}/revoke", data={"project": "from-settings"}
            ).status_code
            == 403
        )
        revoked = browser.post(
            f"/settings/keys/{key_id}/revoke",
            data={"csrf_token": csrf_of(created.text), "project": "from-settings"},
        )
    assert revoked.status_code == 303
    # Refused at once by the server that revoked it (it had worked on for its cache's 30 s).
    assert server.get("/api/v1/events", key.group(1)).status_code == 401


def test_serve_refuses_public_bind_without_credential(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LLMTAP_ADMIN_TOKEN"}
    result = subprocess.run(
        [
            *LLMTAP,
            "serve",
            "--db",
            str(tmp_path / "x.db"),
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "LLMTAP_ADMIN_TOKEN" in result.stderr


def test_first_start_prints_a_token_once(tmp_path: Path) -> None:
    from llmtap.server.dashboard import AdminAuth, ensure_admin_token
    from llmtap.store import open_store

    store = open_store(str(tmp_path / "t.db"))
    token = ensure_admin_token(store, None)
    assert token and ensure_admin_token(store, None) is None
    assert AdminAuth(store).check_token(token)
    assert token.encode() not in (tmp_path / "t.db").read_bytes()
    store.close()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/"])
def test_login_never_redirects_off_site(server: Server, target: str) -> None:
    with httpx2.Client(base_url=server.url) as browser:
        response = browser.post("/login", data=login_form(browser, next=target))
    assert response.headers["location"] == "/"


def test_overview_numbers_are_the_stats_api_answers(server: Server, project: Project) -> None:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    post_events(
        project,
        [
            event(
                model=m,
                prompt_template_name=t,
                latency_ms=lat,
                status=st,
                started_at=(now - timedelta(minutes=i)).isoformat(),
                usage={"input_tokens": 10 * i, "output_tokens": i},
            )
            for i, (m, t, lat, st) in enumerate(
                [
                    ("a", "t1", 100.0, "ok"),
                    ("a", "t2", 250.0, "error"),
                    ("b", "t1", 40.0, "ok"),
                    ("b", "t1", 900.0, "ok"),
                    ("c", "t3", 15.0, "ok"),
                ]
            )
        ],
    )
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get("/", params={"project": name, "range": "all", "format": "json"})
    overview = page.json()

    def api(group_by: str) -> list[dict]:
        params = {"group_by": group_by} if group_by else {}
        return server.get("/api/v1/stats", project.key, **params).json()["groups"]

    assert overview["totals"] == api("")[0]
    for field in ("model", "prompt_template_name", "environment"):
        expected = sorted(api(field), key=lambda g: -g["count"])
        assert overview["breakdowns"][field] == expected
    assert sum(overview["series"]["requests"]) == 5


def test_a_new_admin_token_from_the_command_line(tmp_path: Path) -> None:
    from llmtap.server.dashboard import AdminAuth, ensure_admin_token
    from llmtap.store import open_store

    db = tmp_path / "a.db"
    store = open_store(str(db))
    first = ensure_admin_token(store, None)
    store.close()
    result = subprocess.run(
        [*LLMTAP, "keys", "admin-token", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    new = result.stdout.strip()
    store = open_store(str(db))
    auth = AdminAuth(store)
    assert auth.check_token(new) and first and not auth.check_token(first)
    store.close()


def test_an_attributes_links_find_its_events_whatever_its_name_holds(
    server: Server, project: Project
) -> None:
    """An event's attribute links to the events that share it, and a group of the group-by
    page to the group's events, with a key holding "=" too: ``a=b: c`` is not ``a: b=c``."""
    import html

    equals_in_key, equals_in_value = event(attributes={"a=b": "c"}), event(attributes={"a": "b=c"})
    post_events(project, [equals_in_key, equals_in_value])
    name = project.events()[0]["project"]

    def linked(browser: httpx2.Client, page: str, text: str) -> list[str]:
        """The ids of the events listed by the link of ``page`` whose text is ``text``."""
        hrefs = re.findall(r'<a href="(/events\?[^"]*)">' + re.escape(text) + "</a>", page)
        assert len(hrefs) == 1, hrefs
        target = browser.get(html.unescape(hrefs[0]) + "&format=json")
        return [e["id"] for e in target.json()["events"]]

    with login(server) as browser:
        page = browser.get(f"/events/{equals_in_key['id']}", params={"project": name}).text
        assert linked(browser, page, "c") == [equals_in_key["id"]]
        groups = browser.get(
            "/groups", params={"project": name, "by": "attributes.a=b", "range": "all"}
        ).text
        assert linked(browser, groups, "c") == [equals_in_key["id"]]


def test_the_group_by_page_shows_the_largest_thousand_groups(
    server: Server, project: Project
) -> None:
    """Grouped by a value unique per call (a request id), a page of every group would be a
    row per event: the 1,000 largest are shown, and how many more there are."""
    common = [event(attributes={"request": "shared"}) for _ in range(3)]
    unique = [event(attributes={"request": f"r{i}"}) for i in range(1004)]
    assert post_events(project, common + unique).json()["stored"] == 1007
    name = project.events()[0]["project"]
    params = {"project": name, "by": "attributes.request", "range": "all"}
    with login(server) as browser:
        page = browser.get("/groups", params=params)
        data = browser.get("/groups", params={**params, "format": "json"}).json()
    assert page.status_code == 200
    assert page.text.count("<tr>") == 1 + 1000  # the head's row, and the groups'
    assert "1,000 largest groups are shown; 5 more are not" in page.text
    assert len(data["groups"]) == 1000 and data["groups_not_shown"] == 5
    assert data["groups"][0]["key"]["attributes.request"] == "shared"


def test_the_next_page_keeps_every_attribute_filter(server: Server, project: Project) -> None:
    """Two ``attr`` filters: the "Older" link (and the delete form on its page) selects what
    the first page did, not the last filter alone."""
    from datetime import timedelta

    from .test_server import T0

    both = [
        event(attributes={"aa": "1", "bb": "2"}, started_at=(T0 - timedelta(minutes=i)).isoformat())
        for i in range(3)
    ]
    other = event(
        attributes={"aa": "other", "bb": "2"}, started_at=(T0 - timedelta(hours=1)).isoformat()
    )
    post_events(project, [*both, other])
    name = project.events()[0]["project"]
    query = [("project", name), ("attr", "aa=1"), ("attr", "bb=2"), ("limit", "2")]
    with login(server) as browser:
        first = browser.get("/events", params=query).text
        older = re.search(r'href="(/events\?[^"]*cursor=[^"]*)"', first)
        assert older is not None
        page = browser.get(html.unescape(older.group(1)) + "&format=json").json()
    assert [e["id"] for e in page["events"]] == [both[2]["id"]]


def test_the_deleted_notice_shows_a_count_and_nothing_else(
    server: Server, project: Project
) -> None:
    """The notice after a delete is a number in the URL: other text there is someone's link
    (a page saying what its maker wants, in the dashboard's own voice)."""
    post_events(project, [event()])
    name = project.events()[0]["project"]
    with login(server) as browser:
        count = browser.get("/events", params={"project": name, "deleted": "1234"}).text
        spoof = browser.get(
            "/events", params={"project": name, "deleted": "ALL; log in at x.example"}
        )
    assert "Deleted 1,234 event(s)" in count
    assert "x.example" not in spoof.text and "Deleted" not in spoof.text


def test_the_feedback_page_shows_a_line_per_feedback_not_whole_events(
    server: Server, project: Project
) -> None:
    """Answers and better responses can be megabytes: the page cuts them to a line's worth;
    the download has them whole."""
    big = "x" * 300_000
    rated = event(
        output_text=big,
        feedback_key="big-key",
        request={"messages": [{"role": "user", "content": big}]},
    )
    post_events(project, [rated])
    sent = {"feedback_key": "big-key", "rating": 0.1, "better_response": "y" * 300_000}
    assert server.post("/api/v1/feedback", project.key, json=sent).status_code == 200
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get("/feedback", params={"project": name})
        as_json = browser.get("/feedback", params={"project": name, "format": "json"})
        download = browser.get("/feedback", params={"project": name, "format": "jsonl"})
    assert page.status_code == 200 and len(page.content) < 100_000
    (line,) = as_json.json()["feedback"]
    assert line["event"]["id"] == rated["id"] and "request" not in line["event"]
    assert line["event"]["output_text"] == "x" * 1000 + "…"
    assert line["better_response"] == "y" * 1000 + "…"
    assert len(as_json.content) < 100_000
    assert big in download.text and "y" * 300_000 in download.text


def test_each_attribute_value_links_to_the_events_that_share_it(
    server: Server, project: Project
) -> None:
    """A true, a number, an object, a list: each link names the value as the filter compares
    it, so it finds its event; a null links nowhere (no filter can name it)."""
    values = {"flag": True, "n": 3, "obj": {"a": [1, "b"]}, "list": [1, 2], "none": None}
    tagged = event(attributes=values)
    post_events(project, [tagged, event(attributes={"flag": False, "n": 4})])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/events/{tagged['id']}", params={"project": name}).text
        links = [
            html.unescape(h) for h in re.findall(r'<a href="(/events\?[^"]*attributes[^"]*)"', page)
        ]
        assert len(links) == 4, links  # none for the null
        for link in links:
            found = browser.get(link + "&format=json").json()["events"]
            assert [e["id"] for e in found] == [tagged["id"]], link


def test_links_to_ids_with_dot_segments_stay_on_their_own_item(
    server: Server, project: Project
) -> None:
    """An id is one segment of a link's path, its "/" quoted too: ``a/../b`` is not read as a
    way to ``b`` (a Replay form had posted to ``b``'s), nor a chat ``x/../../settings`` as
    the settings page."""
    tricky = event(id="a/../b", chat_id="x/../../settings", prompt_template_name="t/../u?v#w%")
    child = event(parent_event_id=tricky["id"])
    post_events(project, [tricky, child, event(id="b")])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/events/{child['id']}", params={"project": name}).text
        parent = re.search(r'<a href="(/events/a[^"]*)">', page)
        assert parent is not None and parent.group(1).startswith("/events/a%2F..%2Fb?")
        shown = browser.get(html.unescape(parent.group(1)) + "&format=json").json()
        assert (
            shown["event"]["id"] == tricky["id"]
            if "event" in shown
            else shown["id"] == tricky["id"]
        )
        page = browser.get(html.unescape(parent.group(1))).text
        chat = re.search(r'<a href="(/chats/[^"]*)"', page)
        assert chat is not None
        listed = browser.get(html.unescape(chat.group(1)) + "&format=json")
        assert listed.status_code == 200 and tricky["id"] in listed.text
        templates = browser.get("/templates", params={"project": name}).text
        link = re.search(r'<a href="(/templates/[^"]*)">t/\.\./u\?v#w%</a>', templates)
        assert link is not None
        assert browser.get(html.unescape(link.group(1))).status_code == 200


def test_a_small_call_s_cost_shows_its_digits_not_zero(server: Server, project: Project) -> None:
    """gpt-4o-mini's 100 tokens in and 20 out cost $0.000027: shown so, not "$0.0000"."""
    small = event(model="gpt-4o-mini", usage={"input_tokens": 100, "output_tokens": 20})
    post_events(project, [small])
    stored = project.event(small["id"])
    assert 0 < stored["cost_usd"] < 0.0001
    shown = f"${stored['cost_usd']:.6f}"
    with login(server) as browser:
        page = browser.get(f"/events/{small['id']}", params={"project": stored["project"]}).text
    assert shown in page and "$0.0000<" not in page


def test_the_feedback_download_is_every_rated_call_as_the_set_made_from_it(
    server: Server, project: Project, tmp_path: Path
) -> None:
    """The download holds a case per rated call, however many (it had stopped at 200
    feedbacks), each with its template, model and settings, its newest rating and better
    response sent apart merged; ``llmtap testsets import`` of it gives the cases a set made
    from the same feedback has."""
    events = [
        event(
            model="gpt-4.1",
            feedback_key=f"dl-{i}",
            request={"messages": [{"role": "user", "content": f"q{i}"}], "temperature": 0.3},
            template_chat=[{"role": "user", "content": "q{n}"}],
            template_params={"n": i},
        )
        for i in range(210)
    ]
    post_events(project, events)
    for i in range(210):
        rated = {"feedback_key": f"dl-{i}", "rating": 0.2}
        assert server.post("/api/v1/feedback", project.key, json=rated).status_code == 200
    better = {"feedback_key": "dl-0", "better_response": "a better one"}
    assert server.post("/api/v1/feedback", project.key, json=better).status_code == 200
    name = project.events()[0]["project"]
    with login(server) as browser:
        download = browser.get("/feedback", params={"project": name, "format": "jsonl"})
    lines = [json.loads(line) for line in download.text.split("\n") if line]
    assert len(lines) == 210
    first = next(line for line in lines if line["event_id"] == events[0]["id"])
    assert (first["model"], first["settings"], first["template_params"]) == (
        "gpt-4.1",
        {"temperature": 0.3},
        {"n": 0},
    )
    assert (first["rating"], first["expected"]) == (0.2, "a better one")
    file = tmp_path / "feedback.jsonl"
    file.write_text(download.text)
    imported = subprocess.run(
        [*LLMTAP, "testsets", "import", "from-download", str(file), "--url", server.url,
         "--api-key", project.key],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert imported.returncode == 0 and "added 210 case(s)" in imported.stdout, imported.stderr
    made = server.post("/api/v1/testsets", project.key, json={"name": "made", "source": "feedback"})

    def cases(testset_id: int) -> list[dict[str, Any]]:
        found = server.get(f"/api/v1/testsets/{testset_id}", project.key).json()["cases"]
        keep = ("event_id", "template", "template_params", "input", "model", "settings",
                "rating", "expected", "expected_kind", "original_output")  # fmt: skip
        return sorted(({k: c[k] for k in keep} for c in found), key=lambda c: c["event_id"])

    sets = server.get("/api/v1/testsets", project.key).json()["testsets"]
    by_name = {s["name"]: s["id"] for s in sets}
    assert cases(by_name["from-download"]) == cases(made.json()["testset"]["id"])


@pytest.mark.parametrize("field", ["id", "parent_event_id", "chat_id", "chain_id",
                                   "prompt_template_name"])  # fmt: skip
@pytest.mark.parametrize("name", [".", ".."])
def test_a_name_that_is_a_dot_segment_is_refused(project: Project, field: str, name: str) -> None:
    """Each names a page (``/events/ID``, ``/chats/ID``): a browser reads "." and ".." there
    as a way elsewhere however they are escaped, so they are refused, saying why."""
    answer = post_events(project, [event(**{field: name})])
    assert answer.status_code == 400 and "names no page" in answer.text, answer.text


def test_a_group_links_to_the_events_of_the_range_it_counted(
    server: Server, project: Project
) -> None:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    model = f"ranged-{uuid.uuid4().hex[:6]}"
    fresh = event(model=model, started_at=now.isoformat())
    old = event(model=model, started_at=(now - timedelta(days=3)).isoformat())
    post_events(project, [fresh, old])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get("/groups", params={"project": name, "by": "model", "range": "24h"})
        (href,) = re.findall(r'<a href="(/events\?[^"]*)">' + re.escape(model) + "</a>", page.text)
        listed = browser.get(html.unescape(href) + "&format=json").json()["events"]
    assert [e["id"] for e in listed] == [fresh["id"]]


def test_times_sent_with_an_offset_are_shown_in_utc(server: Server, project: Project) -> None:
    sent = event(started_at="2026-12-04T23:30:00+05:00")
    post_events(project, [sent])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/events/{sent['id']}", params={"project": name}).text
        listing = browser.get("/events", params={"project": name}).text
    for text in (page, listing):
        assert "2026-12-04 18:30:00" in text and "2026-12-04 23:30:00" not in text


def test_a_filter_the_form_has_no_field_for_is_kept_and_shown(
    server: Server, project: Project
) -> None:
    team = f"team-{uuid.uuid4().hex[:6]}"
    blue = [event(attributes={team: "blue"}, chat_id="c1") for _ in range(2)]
    post_events(project, [*blue, event(attributes={team: "red"}, chat_id="c1")])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(
            "/events", params={"project": name, f"attributes.{team}": "blue", "chat_id": "c1"}
        ).text
        form = page.split('<form class="filters"')[1].split("</form>")[0]
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
        assert hidden[f"attributes.{team}"] == "blue" and hidden["chat_id"] == "c1"
        # Filtering again (sorted otherwise) keeps them: the form's fields as a browser sends.
        again = browser.get("/events", params={**hidden, "sort": "-latency_ms", "format": "json"})
        assert sorted(e["id"] for e in again.json()["events"]) == sorted(e["id"] for e in blue)
        (drop,) = re.findall(
            r'<a href="([^"]+)" title="drop this filter" aria-label="drop the filter attributes\.'
            + re.escape(team),
            page,
        )
        wider = browser.get(html.unescape(drop) + "&format=json").json()["events"]
    assert len(wider) == 3


def test_the_templates_page_says_when_it_shows_only_the_last_used(server: Server) -> None:
    project = Project(server.new_key(f"many-{uuid.uuid4().hex[:6]}"), server)
    post_events(project, [event(prompt_template_name=f"t{i}") for i in range(501)])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get("/templates", params={"project": name}).text
        assert page.count('<a href="/templates/t') == 500 and "there are more" in page
    few = Project(server.new_key(f"few-{uuid.uuid4().hex[:6]}"), server)
    post_events(few, [event(prompt_template_name="only")])
    with login(server) as browser:
        page = browser.get("/templates", params={"project": few.events()[0]["project"]}).text
    assert "there are more" not in page and page.count('<a href="/templates/only') == 1


def test_a_chat_step_without_a_latency_shows_none(server: Server, project: Project) -> None:
    chat = f"chat-{uuid.uuid4().hex[:6]}"
    post_events(
        project, [event(chat_id=chat, latency_ms=None), event(chat_id=chat, latency_ms=250.0)]
    )
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/chats/{chat}", params={"project": name}).text
    steps = re.findall(r'<div class="step-head">(.*?)</div>', page, re.S)
    assert len(steps) == 2 and sum(" ms" in s for s in steps) == 1, steps


def test_a_chat_page_shows_one_environment_when_its_link_names_it(server: Server) -> None:
    """A chat id used in dev and in prod is two conversations: the event page links to its
    own environment's, and that page (its delete form too) keeps to it."""
    name = f"envs-{uuid.uuid4().hex[:6]}"
    dev = Project(server.new_key(name, "dev"), server)
    prod = Project(server.new_key(name, "prod"), server)
    turn = event(chat_id="session-1", output_text="a dev turn")
    post_events(dev, [turn])
    post_events(prod, [event(chat_id="session-1", output_text="a prod turn")])
    with login(server) as browser:
        page = browser.get(f"/events/{turn['id']}", params={"project": name}).text
        link = re.search(r'<a href="(/chats/[^"]*)"', page)
        assert link is not None and "environment=dev" in link.group(1)
        chat = browser.get(html.unescape(link.group(1))).text
        assert "a dev turn" in chat and "a prod turn" not in chat
        assert '<input type="hidden" name="environment" value="dev">' in chat
        both = browser.get("/chats/session-1", params={"project": name}).text
    assert "a dev turn" in both and "a prod turn" in both


def test_an_event_page_lists_the_calls_around_it_in_a_long_chat(
    server: Server, project: Project
) -> None:
    """An early turn of a long chat: its neighbours, itself among them, and a link to the
    rest (the newest 200 had been listed, the turn itself not among them)."""
    chat = f"long-{uuid.uuid4().hex[:6]}"
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    turns = [
        event(
            id=f"{chat}-{i:04d}",
            chat_id=chat,
            started_at=(start + timedelta(seconds=i)).isoformat(),
        )
        for i in range(250)
    ]
    for at in range(0, len(turns), 100):
        post_events(project, turns[at : at + 100])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/events/{chat}-0005", params={"project": name}).text
    listed = re.findall(rf'href="/events/({chat}-\d{{4}})\?', page)
    assert listed == [f"{chat}-{i:04d}" for i in range(106)], listed[:8]
    assert "The 106 calls around this one." in page
    assert f'href="/chats/{chat}?project={name}&amp;environment=dev"' in page


def test_a_chain_step_without_an_end_says_so(server: Server, project: Project) -> None:
    chain = uuid.uuid4().hex
    post_events(project, [event(chain_id=chain)])
    name = project.events()[0]["project"]
    store = open_store(str(server.db))
    try:
        pid = store.ensure_project(name)
        row = (chain, "1" * 16, None, "search", "tool", 1_000, None, "ok", "{}")
        assert store.insert_context(pid, [row]) == 1
    finally:
        store.close()
    with login(server) as browser:
        page = browser.get(f"/chains/{chain}", params={"project": name}).text
    assert "search · still running, or its end was not sent</summary>" in page
    assert " ms</summary>" not in page


def test_a_step_encloses_what_starts_with_it() -> None:
    """At the same instant a step comes before a call, and the longer of two steps first."""
    at = "2026-01-01T00:00:00+00:00"
    call = {"event": {"started_at": at}}
    agent = {"started_at": at, "duration_ms": 5000.0}
    tool = {"started_at": at, "duration_ms": 10.0}
    open_step = {"started_at": at, "duration_ms": None}
    earlier = {"event": {"started_at": "2025-12-31T23:59:59+00:00"}}
    rows = _in_time_order([call, earlier], [tool, open_step, agent])
    assert [r[2] for r in rows] == [earlier, agent, tool, open_step, call]


def test_a_long_chain_shows_the_steps_of_the_calls_it_shows(
    server: Server, project: Project
) -> None:
    """A chain page shows its newest 500 calls: the steps beside them, not the trace's first
    steps (from before the first call shown)."""
    chain = uuid.uuid4().hex
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    calls = [
        event(chain_id=chain, started_at=(start + timedelta(seconds=i)).isoformat())
        for i in range(501)
    ]
    for at in range(0, len(calls), 100):
        post_events(project, calls[at : at + 100])
    name = project.events()[0]["project"]
    us = int(start.timestamp() * 1_000_000)
    store = open_store(str(server.db))
    try:
        steps = [
            (
                chain,
                f"{i + 1:016x}",
                None,
                step,
                "tool",
                us + int(at_s * 1_000_000),
                1.0,
                "ok",
                "{}",
            )
            for i, (step, at_s) in enumerate([("early-step", 0.5), ("later-step", 250.5)])
        ]
        store.insert_context(store.ensure_project(name), steps)
    finally:
        store.close()
    with login(server) as browser:
        page = browser.get(f"/chains/{chain}", params={"project": name}).text
    assert "500 calls and 1 steps between them" in page and "Older calls do not fit" in page
    assert "later-step" in page and "early-step" not in page


def test_an_event_page_says_how_much_older_feedback_it_leaves_out(
    server: Server, project: Project
) -> None:
    rated = event(feedback_key=f"fk-{uuid.uuid4().hex[:6]}")
    post_events(project, [rated])
    for i in range(101):
        sent = {"feedback_key": rated["feedback_key"], "rating": 1.0, "better_response": f"b{i}"}
        assert server.post("/api/v1/feedback", project.key, json=sent).status_code == 200
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/events/{rated['id']}", params={"project": name}).text
    assert "The newest 100: 1 older not shown." in page
    assert "better: b100" in page and "better: b0<" not in page


def test_the_feedback_page_pages_to_older_feedback(server: Server) -> None:
    name = f"fb-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    for i in range(205):
        sent = {"feedback_key": "k", "rating": 0.5, "better_response": f"wanted-{i}"}
        assert server.post("/api/v1/feedback", project.key, json=sent).status_code == 200
    with login(server) as browser:
        first = browser.get("/feedback", params={"project": name}).text
        older = re.search(r'<a href="([^"]*)">Older feedback</a>', first)
        assert older is not None and first.count("wanted-") == 200
        assert "wanted-204<" in first and "wanted-4<" not in first
        second = browser.get(html.unescape(older.group(1))).text
        assert second.count("wanted-") == 5 and "wanted-0<" in second
        assert "Older feedback" not in second
        assert browser.get("/feedback", params={"project": name, "before": "x"}).status_code == 400


def test_a_chain_s_rows_are_indented_under_their_parents_whatever_the_links() -> None:
    """A step's parent span and a call's parent event, across kinds; a parent that is the row
    itself, a cycle or a chain longer than the page indents end the walk."""
    at = "2026-01-01T00:00:00+00:00"
    trace = "t" * 32

    def step(span: str, parent: str | None) -> tuple[str, str, dict[str, Any]]:
        return ("step", at, {"trace_id": trace, "span_id": span, "parent_span_id": parent})

    def call(id_: str, parent: str | None) -> tuple[str, str, dict[str, Any]]:
        return ("call", at, {"event": {"id": id_, "parent_event_id": parent}})

    agent = step("a" * 16, None)
    llm = call(event_id(7, trace, "b" * 16), event_id(7, trace, "a" * 16))
    tool = step("c" * 16, "b" * 16)  # under the call's span
    looped = [call("x", "y"), call("y", "x"), call("self", "self")]
    deep = [call(f"d{i}", f"d{i - 1}" if i else None) for i in range(10)]
    rows = [agent, llm, tool, *looped, *deep]
    depths = [row[3] for row in _with_depths(rows, 7)]
    assert depths[:3] == [0, 1, 2]
    assert depths[3:6] == [1, 1, 0]
    assert depths[6:] == [min(i, MAX_DEPTH) for i in range(10)]


def test_a_template_page_lists_its_newest_revisions_and_compares_an_older_one(
    server: Server, project: Project
) -> None:
    name = f"many-{uuid.uuid4().hex[:6]}"
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    calls = [
        event(
            api="completion",
            prompt_template_name=name,
            template_text=f"version {i}: {{q}}",
            template_params={"q": "x"},
            started_at=(start + timedelta(seconds=i)).isoformat(),
        )
        for i in range(102)
    ]
    for at in range(0, len(calls), 100):
        post_events(project, calls[at : at + 100])
    oldest = project.event(calls[0]["id"])["template_revision"]
    project_name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/templates/{name}", params={"project": project_name}).text
        assert "102 revisions" in page and "2 older are not" in page
        assert page.count("<code>") >= 100 and f"<code>{oldest}</code>" not in page
        older = browser.get(f"/templates/{name}", params={"project": project_name, "a": oldest})
    assert older.status_code == 200 and "version 0: {q}" in older.text
