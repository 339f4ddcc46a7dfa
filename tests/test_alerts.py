"""Alerts end to end: a real ``llmtap serve`` evaluating every half second, events sent
through the ingest API with timestamps spread over the past hours, and real receivers on
loopback (webhooks that check the HMAC, an SMTP server behind a login)."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ._receivers import Mailbox, Webhook, wait_until
from .conftest import Project, Server, start_server, stop_server
from .test_server import event

SECRET = "hook-secret"
FAST = {
    "LLMTAP_ALERT_INTERVAL": "0.5",
    "LLMTAP_ALERT_DELAY": "0",
    "LLMTAP_ALERT_ALLOW_NETWORKS": "127.0.0.0/8",
    "LLMTAP_ALERT_RETRY_DELAY": "0.3",
    "LLMTAP_ALERT_TIMEOUT": "2",
    "LLMTAP_PUBLIC_URL": "http://dash.example",
}


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("alerting"), FAST)
    yield server
    stop_server(server)


@pytest.fixture
def hook() -> Iterator[Webhook]:
    receiver = Webhook()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.close()


def ago(**delta: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).isoformat()


def send(project: Project, events: list[dict[str, Any]]) -> None:
    answer = project.server.post("/api/v1/events", project.key, json={"events": events})
    assert answer.status_code == 200 and answer.json()["stored"] == len(events), answer.text


def create(project: Project, path: str, body: dict[str, Any]) -> None:
    answer = project.server.post(path, project.key, json=body)
    assert answer.status_code == 201, answer.text


def mail_channel(mailbox: Mailbox) -> dict[str, Any]:
    """An email channel to the test's SMTP server, behind its login."""
    return {
        "kind": "email",
        "name": "mail",
        "host": "127.0.0.1",
        "port": mailbox.port,
        "starttls": False,
        "username": Mailbox.user,
        "password": Mailbox.password,
        "sender": "llmtap@example.com",
        "to": ["oncall@example.com"],
    }


def verified(hook: Webhook) -> list[dict[str, Any]]:
    """The signed bodies the hook received, each checked against its signature."""
    out = []
    for headers, body in list(hook.received):
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-llmtap-signature"], want)
        out.append(json.loads(body))
    return out


def events_of(hook: Webhook, name: str, kind: str) -> list[dict[str, Any]]:
    return [b for b in hook.bodies() if b.get("name") == name and b.get("event") == kind]


def test_a_rule_fires_and_resolves_through_signed_webhooks_slack_and_mail(
    alerting: Server, hook: Webhook, mailbox: Mailbox
) -> None:
    project = Project(alerting.new_key(), alerting)
    slack = Webhook()
    try:
        create(
            project,
            "/api/v1/alert-channels",
            {"kind": "webhook", "name": "ops", "url": hook.url, "secret": SECRET},
        )
        create(
            project,
            "/api/v1/alert-channels",
            {"kind": "webhook", "name": "chat", "url": slack.url, "format": "slack"},
        )
        create(project, "/api/v1/alert-channels", mail_channel(mailbox))
        rule = {
            "name": "errors <b>jump</b>",
            "measure": "error_rate",
            "filters": {"model": "m1"},
            "window": "1h",
            "op": "above",
            "threshold": 50,
            "min_events": 5,
            "severity": "critical",
            "cooldown": 0,
        }
        create(project, "/api/v1/alerts", rule)
        # Four errors: under min_events, no alert yet. Another model's errors never count.
        send(
            project,
            [event(model="m1", status="error", started_at=ago(minutes=30)) for _ in range(4)],
        )
        send(
            project,
            [event(model="m2", status="error", started_at=ago(minutes=30)) for _ in range(9)],
        )
        wait_until(lambda: _state(project, rule["name"])["evaluated_at"], what="an evaluation")
        assert _state(project, rule["name"])["state"] == "ok"
        send(project, [event(model="m1", status="error", started_at=ago(minutes=40))])
        wait_until(lambda: events_of(hook, rule["name"], "firing"), what="the firing webhook")
        (firing,) = [b for b in verified(hook) if b["event"] == "firing"]
        assert (firing["value"], firing["threshold"], firing["events"]) == (100.0, 50.0, 5)
        assert firing["severity"] == "critical" and firing["window"]["seconds"] == 3600
        assert firing["link"].startswith("http://dash.example/events?project=")
        assert "model=m1" in firing["link"] and "from=" in firing["link"]
        assert "project_id" not in firing
        text = wait_until(lambda: slack.bodies(), what="the slack body")[0]["text"]
        assert "FIRING" in text and "<http://dash.example/events?" in text
        # What Slack would read as markup (<!channel>, <url|label>) is escaped as it asks.
        assert "errors &lt;b&gt;jump&lt;/b&gt;" in text and "<b>" not in text
        mail = wait_until(lambda: [m for m in mailbox.messages if "FIRING" in m["Subject"]])[0]
        assert mail["To"] == "oncall@example.com" and rule["name"] in mail["Subject"]
        assert "http://dash.example/events?" in mail.get_content()
        # Fifteen good calls: 5 errors of 20 is 25%, under the threshold: resolved, notified.
        send(project, [event(model="m1", started_at=ago(minutes=20)) for _ in range(15)])
        wait_until(lambda: events_of(hook, rule["name"], "resolved"), what="the resolution")
        wait_until(lambda: [m for m in mailbox.messages if "RESOLVED" in m["Subject"]])
        assert len(events_of(hook, rule["name"], "firing")) == 1
        one = project.server.get(f"/api/v1/alerts/{rule['name']}", project.key).json()
        kinds = [h["event"] for h in one["history"]]
        assert kinds.count("firing") == 1 and kinds.count("resolved") == 1
        assert kinds.count("sent") >= 4, kinds  # three channels for firing, more for resolved
        assert one["rule"]["window"] == 3600
    finally:
        slack.close()


def _state(project: Project, name: str) -> dict[str, Any]:
    answer = project.server.get("/api/v1/alerts", project.key).json()
    (rule,) = [r for r in answer["rules"] if r["name"] == name]
    return rule["groups"][0] if rule["groups"] else {"state": "ok", "evaluated_at": None}


def test_late_events_count_in_their_own_window_and_groups_fire_alone(
    alerting: Server, hook: Webhook
) -> None:
    project = Project(alerting.new_key(), alerting)
    create(project, "/api/v1/alert-channels", {"kind": "webhook", "name": "ops", "url": hook.url})
    base = {"measure": "requests", "op": "above", "threshold": 10, "cooldown": 0}
    create(project, "/api/v1/alerts", {**base, "name": "now", "window": "10m"})
    create(project, "/api/v1/alerts", {**base, "name": "today", "window": "6h"})
    create(
        project,
        "/api/v1/alerts",
        {**base, "name": "per model", "window": "6h", "group_by": "model", "threshold": 5},
    )
    # A spool delivered after an outage: 12 calls of three hours ago, arriving now.
    send(project, [event(model="a", started_at=ago(hours=3, minutes=i)) for i in range(12)])
    send(project, [event(model="b", started_at=ago(hours=2)) for _ in range(2)])
    wait_until(lambda: events_of(hook, "today", "firing"), what="the 6h rule")
    wait_until(lambda: events_of(hook, "per model", "firing"), what="the grouped rule")
    (grouped,) = events_of(hook, "per model", "firing")
    assert grouped["group"] == {"model": "a"} and grouped["value"] == 12
    assert "model=a" in grouped["link"]

    def by_name() -> dict[str, Any]:
        states = project.server.get("/api/v1/alerts", project.key).json()["rules"]
        return {r["name"]: r for r in states}

    # Model b's events may arrive a cycle after a's: its group is then seen, and stays ok.
    wait_until(lambda: len(by_name()["per model"]["groups"]) == 2, what="both groups")
    rules = by_name()
    assert rules["now"]["state"] == "ok" and rules["now"]["groups"][0]["value"] == 0
    assert {json.dumps(g["group"]): g["state"] for g in rules["per model"]["groups"]} == {
        '{"model": "a"}': "firing",
        '{"model": "b"}': "ok",
    }
    assert not events_of(hook, "now", "firing")


def test_a_budget_notifies_each_fraction_once_with_a_forecast(
    alerting: Server, hook: Webhook
) -> None:
    project = Project(alerting.new_key(), alerting)
    # One dollar per input token for this model: the spend is easy to count.
    priced = project.server.post(
        "/api/v1/prices",
        project.key,
        json={"model": "dollar", "input_per_mtok": 1_000_000, "output_per_mtok": 0},
    )
    assert priced.status_code == 200, priced.text
    create(project, "/api/v1/alert-channels", {"kind": "webhook", "name": "ops", "url": hook.url})
    create(
        project,
        "/api/v1/budgets",
        {"name": "monthly", "limit_usd": 10, "period": "month", "notify_at": [0.5, 1.0]},
    )
    start = max(datetime.now(timezone.utc) - timedelta(minutes=2), _month_start())

    def spend(n: int) -> None:
        usage = {"input_tokens": 1, "output_tokens": 0}
        send(
            project,
            [event(model="dollar", usage=usage, started_at=start.isoformat()) for _ in range(n)],
        )

    spend(6)
    (half,) = wait_until(lambda: events_of(hook, "monthly", "budget"), what="50%")
    assert (half["value"], half["fraction"], half["threshold"]) == (6.0, 0.5, 10.0)
    assert half["forecast"] >= 6.0 and half["period"] == "month"
    spend(5)
    wait_until(lambda: len(events_of(hook, "monthly", "budget")) == 2, what="100%")
    _wait_cycles(project, "monthly", "budgets")
    notes = events_of(hook, "monthly", "budget")
    assert [n["fraction"] for n in notes] == [0.5, 1.0]  # each once, however many cycles
    budget = project.server.get("/api/v1/budgets", project.key).json()["budgets"][0]
    assert budget["state"] == "firing" and budget["groups"][0]["extra"]["notified"] == [0.5, 1.0]


def _month_start() -> datetime:
    now = datetime.now(timezone.utc)
    return datetime(now.year, now.month, 1, tzinfo=timezone.utc)


def _wait_cycles(project: Project, name: str, plural: str, cycles: int = 3) -> None:
    """Let the evaluator run a few more times."""

    def evaluated() -> str:
        path = "/api/v1/alerts" if plural == "rules" else f"/api/v1/{plural}"
        items = project.server.get(path, project.key).json()[plural]
        return next(i for i in items if i["name"] == name)["groups"][0]["evaluated_at"]

    seen = {evaluated()}

    def more() -> bool:
        seen.add(evaluated())
        return len(seen) > cycles

    wait_until(more, what=f"{cycles} more evaluations")


def test_a_receiver_down_then_back_gets_the_notification_and_a_hang_stalls_nothing(
    alerting: Server,
) -> None:
    project = Project(alerting.new_key(), alerting)
    down = Webhook()
    down.close()  # nobody listens on its port for now
    stuck = Webhook()
    stuck.hang = 5  # longer than LLMTAP_ALERT_TIMEOUT
    broken = Webhook()
    broken.status = 500
    try:
        create(
            project, "/api/v1/alert-channels", {"kind": "webhook", "name": "down", "url": down.url}
        )
        create(
            project,
            "/api/v1/alert-channels",
            {"kind": "webhook", "name": "stuck", "url": stuck.url},
        )
        create(
            project,
            "/api/v1/alert-channels",
            {"kind": "webhook", "name": "broken", "url": broken.url},
        )
        rule = {"measure": "requests", "window": "1h", "threshold": 0, "cooldown": 0}
        create(project, "/api/v1/alerts", {**rule, "name": "first"})
        send(project, [event(started_at=ago(minutes=5))])
        history = lambda: project.server.get("/api/v1/alerts/first", project.key).json()["history"]  # noqa: E731
        wait_until(lambda: any(h["detail"].get("channel") == "down" for h in history()))
        back = Webhook(down.port)
        try:
            wait_until(lambda: back.bodies(), what="a retry reaching the receiver once back")
            # Meanwhile the evaluator went on: a new rule fires while the others retry.
            create(project, "/api/v1/alerts", {**rule, "name": "second", "channels": ["down"]})
            wait_until(lambda: [b for b in back.bodies() if b["name"] == "second"], timeout=10)
        finally:
            back.close()
        attempts = wait_until(
            lambda: [h["detail"] for h in history() if h["detail"].get("channel") == "broken"][3:],
            what="four attempts on the broken hook",
        )
        broken_attempts = [h["detail"] for h in history() if h["detail"].get("channel") == "broken"]
        assert len(broken_attempts) == 4 and not any(a["ok"] for a in broken_attempts)
        assert "500" in broken_attempts[0]["said"] and attempts
        down_attempts = [h["detail"] for h in history() if h["detail"].get("channel") == "down"]
        assert not down_attempts[-1]["ok"] and down_attempts[0]["ok"]  # newest first
        stuck_attempts = wait_until(
            lambda: [h["detail"] for h in history() if h["detail"].get("channel") == "stuck"]
        )
        assert stuck_attempts[-1]["said"] == "timed out"
    finally:
        stuck.close()
        broken.close()


def test_two_processes_one_evaluator_and_a_dead_one_hands_over(
    tmp_path: Path, hook: Webhook
) -> None:
    a = start_server(tmp_path, FAST)
    b = start_server(tmp_path, FAST)
    servers = {a.process.pid: a, b.process.pid: b}
    try:
        project = Project(a.new_key(), a)
        create(
            project, "/api/v1/alert-channels", {"kind": "webhook", "name": "ops", "url": hook.url}
        )
        create(
            project,
            "/api/v1/alerts",
            {"name": "any", "measure": "requests", "window": "1h", "threshold": 0},
        )
        send(project, [event(started_at=ago(minutes=5))])
        wait_until(lambda: events_of(hook, "any", "firing"))
        _wait_cycles(project, "any", "rules")
        assert len(events_of(hook, "any", "firing")) == 1  # two processes, one notification
        with sqlite3.connect(a.db) as conn:
            (holder,) = conn.execute("SELECT holder FROM alert_lease").fetchone()
        dead = servers.pop(int(holder.split("-")[0]))
        dead.process.kill()
        dead.process.wait()
        (alive,) = servers.values()
        project = Project(project.key, alive)
        create(
            project,
            "/api/v1/alerts",
            {"name": "after", "measure": "requests", "window": "1h", "threshold": 0},
        )
        wait_until(lambda: events_of(hook, "after", "firing"), timeout=30, what="the takeover")
        assert len(events_of(hook, "any", "firing")) == 1  # its state survived the handover
    finally:
        for server in servers.values():
            stop_server(server)


def test_webhooks_to_private_addresses_are_refused_unless_allowed(server: Server) -> None:
    project = Project(server.new_key(), server)
    for url in (
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "http://10.1.2.3/",
        # IPv4 addresses inside IPv6 ones that a gateway forwards to: NAT64, 6to4, Teredo.
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[64:ff9b:1::7f00:1]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[2001:0:a9fe:a9fe::1]/",
    ):
        answer = project.server.post(
            "/api/v1/alert-channels", project.key, json={"kind": "webhook", "name": "x", "url": url}
        )
        assert answer.status_code == 400, url
        assert "not a public address" in answer.json()["error"]
        assert answer.json()["errors"][0]["field"] == "url"


def test_send_a_test_reaches_the_channels_now(alerting: Server, hook: Webhook) -> None:
    project = Project(alerting.new_key(), alerting)
    create(
        project, "/api/v1/alerts", {"name": "t", "measure": "cost", "window": "1d", "threshold": 5}
    )
    lonely = project.server.post("/api/v1/alerts/t/test", project.key)
    assert lonely.status_code == 400 and "no channel" in lonely.json()["error"]
    create(
        project,
        "/api/v1/alert-channels",
        {"kind": "webhook", "name": "ops", "url": hook.url, "secret": SECRET},
    )
    answer = project.server.post("/api/v1/alerts/t/test", project.key)
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    (body,) = verified(hook)
    assert body["event"] == "test" and body["name"] == "t"
    listed = project.server.get("/api/v1/alert-channels", project.key).json()["channels"]
    assert listed == [
        {
            "kind": "webhook",
            "name": "ops",
            "url": f"http://127.0.0.1:{hook.port}/…",
            "format": "json",
            "signed": True,
        }
    ]
    _ = uuid


def test_a_channel_read_and_written_back_keeps_what_the_mask_hid(
    alerting: Server, hook: Webhook
) -> None:
    project = Project(alerting.new_key(), alerting)
    channel = {"kind": "webhook", "name": "ops", "url": hook.url, "secret": SECRET}
    create(project, "/api/v1/alert-channels", channel)
    create(
        project, "/api/v1/alerts", {"name": "t", "measure": "cost", "window": "1h", "threshold": 1}
    )
    auth = {"authorization": f"Bearer {project.key}"}
    with httpx2.Client(base_url=alerting.url, headers=auth, timeout=30) as http:
        shown = http.get("/api/v1/alert-channels/ops").json()["channel"]
        assert shown["url"].endswith("/…") and "secret" not in shown and shown["signed"]
        written = http.put("/api/v1/alert-channels/ops", json={**shown, "format": "json"})
        assert written.status_code == 200, written.text
        assert http.post("/api/v1/alerts/t/test").json()["ok"]
    (body,) = verified(hook)  # reached at its full URL, signed with the secret kept
    assert body["event"] == "test"
    # A new URL or secret given is taken as given.
    moved = Webhook()
    try:
        with httpx2.Client(base_url=alerting.url, headers=auth, timeout=30) as http:
            again = http.put("/api/v1/alert-channels/ops", json={**channel, "url": moved.url})
            assert again.status_code == 200, again.text
            assert http.post("/api/v1/alerts/t/test").json()["ok"]
        assert [b["event"] for b in moved.bodies()] == ["test"]
    finally:
        moved.close()


def test_a_budgets_test_and_a_name_with_odd_line_breaks_reach_the_mailbox(
    alerting: Server, mailbox: Mailbox
) -> None:
    project = Project(alerting.new_key(), alerting)
    create(project, "/api/v1/alert-channels", mail_channel(mailbox))
    create(project, "/api/v1/budgets", {"name": "spend", "limit_usd": 40, "period": "day"})
    odd = "one\u2028two\u2029three"  # not control characters, yet line breaks
    create(
        project, "/api/v1/alerts", {"name": odd, "measure": "cost", "window": "1h", "threshold": 1}
    )
    for path in ("/api/v1/budgets/spend/test", f"/api/v1/alerts/{odd}/test"):
        answer = project.server.post(path, project.key)
        assert answer.status_code == 200 and answer.json()["ok"], (path, answer.text)
    budget = wait_until(lambda: [m for m in mailbox.messages if "TEST: spend" in m["Subject"]])
    assert "$40.00 a day" in budget[0]["Subject"]
    rule = wait_until(lambda: [m for m in mailbox.messages if "one two three" in m["Subject"]])
    assert "TEST" in rule[0]["Subject"]


def test_the_dashboard_shows_rules_budgets_history_and_a_banner_and_sends_tests(
    alerting: Server, hook: Webhook
) -> None:
    from .test_dashboard_http import csrf_of, login

    name = f"dash-{uuid.uuid4().hex[:6]}"
    project = Project(alerting.new_key(name), alerting)
    with login(alerting) as browser:
        page = browser.get("/alerts", params={"project": name})
        assert page.status_code == 200 and "No rules yet." in page.text
        # The form names every measure a rule may take, the aggregates' newest too.
        assert "<code>low_rating_share</code>" in page.text
        assert "<code>reasoning_tokens</code>" in page.text
        for body in (
            {"kind": "webhook", "name": "ops", "url": hook.url, "secret": SECRET},
            {"name": "busy", "measure": "requests", "window": "1h", "threshold": 2},
            {"name": "quick", "measure": "requests", "window": "5m", "threshold": 10},
            {"kind": "budget", "name": "wallet", "limit_usd": 5},
        ):
            made = browser.post(
                "/alerts/new",
                data={"csrf_token": csrf_of(page.text), "project": name, "body": json.dumps(body)},
            )
            assert made.status_code == 303, made.text
        bad = browser.post(
            "/alerts/new",
            data={"csrf_token": csrf_of(page.text), "project": name, "body": '{"name": "x"}'},
        )
        assert bad.status_code == 400 and "measure" in bad.text
        forged = browser.post("/alerts/new", data={"project": name, "body": "{}"})
        assert forged.status_code == 403
        send(project, [event(started_at=ago(minutes=10)) for _ in range(3)])
        wait_until(lambda: events_of(hook, "busy", "firing"))
        overview = browser.get("/", params={"project": name})
        assert "1 alert(s) firing:" in overview.text and "busy" in overview.text
        page = browser.get("/alerts", params={"project": name})
        assert 'class="state firing">firing' in page.text and "wallet" in page.text
        charts = json.loads(page.text.split('id="alert-charts">')[1].split("</script>")[0])
        assert charts[0]["threshold"] == 2 and sum(charts[0]["v"]) == 3
        # 10 requests a 5-minute window, drawn against minutes: 2 a minute.
        assert (charts[1]["threshold"], charts[1]["threshold_label"]) == (2, "threshold a minute")
        tested = browser.post(
            f"/alerts/test?project={name}",
            data={
                "csrf_token": csrf_of(page.text),
                "project": name,
                "kind": "rule",
                "name": "busy",
            },
        )
        assert tested.status_code == 200 and "Test of busy: ops: sent" in tested.text
        assert [b["event"] for b in verified(hook)].count("test") == 1
        as_json = browser.get("/alerts", params={"project": name, "format": "json"}).json()
        assert {h["event"] for h in as_json["history"]} >= {"firing", "sent"}


def test_the_alerts_page_in_chromium(alerting: Server, hook: Webhook) -> None:
    """Charts drawn (uPlot, under the page's CSP), a test sent from the button, a banner."""
    from .browser import chromium, log_in
    from .conftest import ADMIN_TOKEN

    name = f"chromium-{uuid.uuid4().hex[:6]}"
    project = Project(alerting.new_key(name), alerting)
    create(project, "/api/v1/alert-channels", {"kind": "webhook", "name": "ops", "url": hook.url})
    create(
        project,
        "/api/v1/alerts",
        {"name": "busy", "measure": "requests", "window": "1h", "threshold": 1},
    )
    send(project, [event(started_at=ago(minutes=m)) for m in (3, 5, 9)])
    wait_until(lambda: events_of(hook, "busy", "firing"))
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, alerting.url, ADMIN_TOKEN, f"/?project={name}")
        assert "busy" in page.locator(".banner").inner_text()
        page.click(".banner a")
        page.wait_for_url("**/alerts?**")
        page.wait_for_selector(".alert-chart canvas")
        assert page.locator(".alert-chart canvas").count() >= 1
        assert page.locator("td .state.firing").first.inner_text() == "firing"
        page.click("form.inline button:has-text('Send a test')")
        page.wait_for_selector(".notice")
        assert "Test of busy: ops: sent" in page.locator(".notice").inner_text()
        assert [b["event"] for b in hook.bodies()].count("test") == 1
        assert not errors, errors


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (and its key), made by openssl."""
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_mail_goes_over_starttls_to_a_relay_whose_certificate_is_checked(tmp_path: Path) -> None:
    """A relay that takes a login only after STARTTLS: mail reaches it when the server trusts
    its certificate (here through SSL_CERT_FILE, as a private CA is trusted), and is refused,
    the failure recorded, when the server does not."""
    cert, key = _certificate(tmp_path)
    relay = Mailbox(tls=(cert, key))
    channel = {
        "kind": "email",
        "name": "mail",
        "host": "localhost",
        "port": relay.port,
        "starttls": True,
        "username": Mailbox.user,
        "password": Mailbox.password,
        "sender": "llmtap@example.com",
        "to": ["oncall@example.com"],
    }
    rule = {"name": "t", "measure": "cost", "window": "1d", "threshold": 5}
    try:
        for trusted in (True, False):
            folder = tmp_path / f"trusted-{trusted}"
            folder.mkdir()
            env = {**FAST, "LLMTAP_ALERT_RETRY_DELAY": "0.1"}
            if trusted:
                env["SSL_CERT_FILE"] = str(cert)
            server = start_server(folder, env)
            try:
                project = Project(server.new_key(), server)
                create(project, "/api/v1/alert-channels", channel)
                create(project, "/api/v1/alerts", rule)
                answer = project.server.post("/api/v1/alerts/t/test", project.key)
                assert answer.status_code == 200, answer.text
                if trusted:
                    assert answer.json()["ok"], answer.text
                    mail = wait_until(lambda: relay.messages, what="the mail over TLS")[0]
                    assert "t" in mail["Subject"]
                else:
                    assert not answer.json()["ok"], answer.text
                    assert "certificate" in answer.text.lower(), answer.text
            finally:
                stop_server(server)
        assert len(relay.messages) == 1  # the untrusted server's mail never reached it
    finally:
        relay.close()


def test_a_link_points_at_the_port_the_server_was_started_on(tmp_path: Path) -> None:
    """No public_url: an alert's link names the host and port given to ``serve`` (it had
    named the defaults, 127.0.0.1:7420, whatever the server was started with)."""
    fast = {k: v for k, v in FAST.items() if k != "LLMTAP_PUBLIC_URL"}
    server = start_server(tmp_path, fast)
    hook = Webhook()
    try:
        project = Project(server.new_key(), server)
        create(project, "/api/v1/alert-channels", {"kind": "webhook", "name": "h", "url": hook.url})
        create(
            project,
            "/api/v1/alerts",
            {"name": "busy", "measure": "requests", "window": "1h", "threshold": 0},
        )
        send(project, [event(started_at=ago(minutes=5))])
        wait_until(lambda: events_of(hook, "busy", "firing"), what="the firing webhook")
        (firing,) = events_of(hook, "busy", "firing")
        assert firing["link"].startswith(server.url + "/events?project="), firing["link"]
    finally:
        hook.close()
        stop_server(server)
