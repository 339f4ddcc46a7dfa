"""Dashboard users, against a real ``llmtap serve``: the first admin made with the admin token
(which then opens nothing), roles per project, one-time invitations, sessions that end at once
(logout, password change, removal), throttled logins, CSRF bound to the session, argon2
hashes, a capped login body, and a short admin token refused at start."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from llmtap.store import open_store

from .conftest import (
    ADMIN_PASSWORD,
    ADMIN_TOKEN,
    ADMIN_USER,
    LLMTAP,
    Server,
    error_message,
    free_port,
    start_server,
    stop_server,
    wait_for,
)
from .test_dashboard_http import csrf_of, login
from .test_server import event

PASSWORD = "a-long-enough-password"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A server of its own: no user yet, no failed login counted."""
    srv = start_server(tmp_path)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server shared by this module's tests, with its owner made and two projects."""
    server = start_server(tmp_path_factory.mktemp("users"))
    server.new_key("alpha")
    server.new_key("beta")
    with login(server):
        pass
    yield server
    stop_server(server)


def browser(server: Server, client: str | None = None) -> httpx2.Client:
    # X-Forwarded-For from loopback is believed (uvicorn's default): one test process can
    # stand for several client addresses.
    headers = {"accept": "text/html", **({"x-forwarded-for": client} if client else {})}
    return httpx2.Client(base_url=server.url, headers=headers)


def log_in_as(b: httpx2.Client, name: str, password: str) -> httpx2.Response:
    csrf = csrf_of(b.get("/login").text)
    return b.post("/login", data={"csrf_token": csrf, "name": name, "password": password})


def logged_in(b: httpx2.Client) -> bool:
    return b.get("/settings", params={"format": "json"}).status_code == 200


def invite(owner: httpx2.Client, project: str, role: str) -> str:
    page = owner.post(
        "/settings/invitations",
        data={"csrf_token": csrf_of(owner.get("/settings").text), "project": project, "role": role},
    )
    assert page.status_code == 200, page.text
    match = re.search(r"https?://[^/\s<]+(/invite/[A-Za-z0-9_-]{40,})", page.text)
    assert match, page.text
    return match.group(1)


@contextmanager
def accept(server: Server, link: str, name: str) -> Iterator[httpx2.Client]:
    """A new browser that opened the link and joined as ``name``."""
    with browser(server) as b:
        page = b.get(link)
        assert page.status_code == 200, page.text
        form = {"csrf_token": csrf_of(page.text), "name": name, "password": PASSWORD}
        joined = b.post(link, data=form)
        assert joined.status_code == 303, joined.text
        yield b


def test_bootstrap_makes_the_owner_and_then_the_token_opens_nothing(fresh: Server) -> None:
    with browser(fresh) as b:
        page = b.get("/login").text
        assert 'name="token"' in page
        form = {"csrf_token": csrf_of(page), "name": ADMIN_USER, "password": ADMIN_PASSWORD}
        assert b.post("/login", data={**form, "token": "not-the-token"}).status_code == 401
        short = b.post("/login", data={**form, "token": ADMIN_TOKEN, "password": "short"})
        assert short.status_code == 400 and "12" in short.text
        assert not logged_in(b)
        made = b.post("/login", data={**form, "token": ADMIN_TOKEN})
        assert made.status_code == 303 and logged_in(b)
        me = b.get("/settings", params={"format": "json"}).json()["me"]
        assert me["name"] == ADMIN_USER and me["is_owner"]
    with browser(fresh) as b:
        page = b.get("/login").text
        assert 'name="token"' not in page
        csrf = csrf_of(page)
        for form in (
            {"token": ADMIN_TOKEN, "name": "intruder", "password": PASSWORD},
            {"name": ADMIN_USER, "password": ADMIN_TOKEN},
        ):
            assert b.post("/login", data={"csrf_token": csrf, **form}).status_code == 401
        assert not logged_in(b)
        assert log_in_as(b, ADMIN_USER.upper(), ADMIN_PASSWORD).status_code == 303
        assert logged_in(b)
    # The command that made a new admin token refuses, and says what to use instead.
    cli = subprocess.run(
        [*LLMTAP, "keys", "admin-token", "--db", str(fresh.db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and "users reset-password" in cli.stderr
    # Stored as an argon2id hash, the password nowhere in clear.
    store = open_store(str(fresh.db))
    try:
        stored = store.user_by_name(ADMIN_USER)
    finally:
        store.close()
    assert stored and stored["password_hash"].startswith("$argon2id$")
    for path in fresh.db.parent.iterdir():
        assert ADMIN_PASSWORD.encode() not in path.read_bytes(), path


def test_a_viewer_reads_its_project_only_and_manages_nothing(srv: Server) -> None:
    with login(srv) as owner:
        link = invite(owner, "alpha", "viewer")
    with accept(srv, link, "vera") as viewer:
        assert viewer.get("/events", params={"project": "alpha"}).status_code == 200
        mine = viewer.get("/events", params={"format": "json"}).json()
        assert mine["project"] == "alpha"
        for path in ("/events", "/", "/feedback", "/templates"):
            for fmt in ("json", "html"):
                other = viewer.get(path, params={"project": "beta", "format": fmt})
                assert other.status_code == 404, (path, other.text)
        page = viewer.get("/events", params={"project": "alpha"}).text
        assert '<option value="alpha"' in page and "beta" not in page
        # No delete button a viewer could only be refused by (the owner's page has one).
        one = event(model="m-vera", chat_id="c-vera")
        sent = srv.post("/api/v1/events", srv.new_key("alpha"), json={"events": [one]})
        assert sent.status_code == 200
        pages = [
            ("/events", {"project": "alpha", "model": "m-vera"}),
            (f"/events/{one['id']}", {"project": "alpha"}),
            ("/chats/c-vera", {"project": "alpha"}),
        ]
        for path, params in pages:
            shown = viewer.get(path, params=params)
            assert shown.status_code == 200 and 'action="/events/delete"' not in shown.text
        with login(srv) as owner:
            for path, params in pages:
                assert 'action="/events/delete"' in owner.get(path, params=params).text
            assert 'action="/alerts/new"' in owner.get("/alerts", params={"project": "alpha"}).text
        # Nor a form on the alerts page (a rule to make, a test to send).
        alerts = viewer.get("/alerts", params={"project": "alpha"})
        assert alerts.status_code == 200 and 'action="/alerts/' not in alerts.text
        settings = viewer.get("/settings")
        csrf = csrf_of(settings.text)
        assert "beta" not in settings.text and "/revoke" not in settings.text
        forms = {
            "/settings/keys": {"project": "alpha", "scope": "read"},
            "/settings/invitations": {"project": "alpha", "role": "admin"},
            "/settings/keys/1/revoke": {"project": "alpha"},
            "/settings/keys/1/scopes": {"project": "alpha", "scope": "admin"},
            "/settings/members/1/remove": {"project": "alpha"},
            "/settings/users/1/delete": {},
        }
        for path, form in forms.items():
            refused = viewer.post(path, data={"csrf_token": csrf, **form})
            assert refused.status_code == 403, (path, refused.text)
            assert "403" in refused.text and error_message(refused)
        # Nor can a key be made for a project the viewer does not know.
        assert (
            viewer.post(
                "/settings/keys", data={"csrf_token": csrf, "project": "beta", "scope": "read"}
            ).status_code
            == 403
        )


def test_a_project_admin_manages_that_project_only(srv: Server) -> None:
    with login(srv) as owner:
        link = invite(owner, "alpha", "admin")
    with accept(srv, link, "ada") as admin:
        csrf = csrf_of(admin.get("/settings").text)
        made = admin.post(
            "/settings/keys", data={"csrf_token": csrf, "project": "alpha", "scope": "read"}
        )
        assert made.status_code == 200 and re.search(r"lt_[A-Za-z0-9_-]{20,}", made.text)
        for project in ("beta", "a-new-project"):
            refused = admin.post(
                "/settings/keys", data={"csrf_token": csrf, "project": project, "scope": "read"}
            )
            assert refused.status_code == 403
        # Invites a member; then changes the role, then takes them out: at once, each time.
        link = invite(admin, "alpha", "member")
        with accept(srv, link, "mo") as member:
            settings = admin.get("/settings", params={"format": "json"}).json()
            alpha = next(p for p in settings["projects"] if p["name"] == "alpha")
            mo = next(m for m in alpha["members"] if m["name"] == "mo")
            assert mo["roles"] == {"alpha": "member"}
            assert member.get("/settings", params={"format": "json"}).json()["users"] == []
            changed = admin.post(
                f"/settings/members/{mo['id']}/role",
                data={"csrf_token": csrf, "project": "alpha", "role": "viewer"},
            )
            assert changed.status_code == 303
            assert (
                member.get("/settings", params={"format": "json"}).json()["projects"][0]["role"]
                == "viewer"
            )
            removed = admin.post(
                f"/settings/members/{mo['id']}/remove",
                data={"csrf_token": csrf, "project": "alpha"},
            )
            assert removed.status_code == 303
            gone = member.get("/events", params={"project": "alpha", "format": "json"})
            assert gone.status_code == 404


def test_an_admins_links_go_with_their_role_and_they_see_one_projects_roles(srv: Server) -> None:
    with login(srv) as owner:
        made_admin = invite(owner, "alpha", "admin")
        beta_link = invite(owner, "beta", "viewer")
        with accept(srv, made_admin, "abe") as abe:
            links = [invite(abe, "alpha", "member") for _ in range(2)]
            with accept(srv, links[0], "bo") as bo:
                joined = bo.post(beta_link, data={"csrf_token": csrf_of(bo.get(beta_link).text)})
                assert joined.status_code == 303
            alpha = next(
                p
                for p in abe.get("/settings", params={"format": "json"}).json()["projects"]
                if p["name"] == "alpha"
            )
            assert {m["name"]: m["roles"] for m in alpha["members"]}["bo"] == {"alpha": "member"}
            users = owner.get("/settings", params={"format": "json"}).json()["users"]
            ids = {u["name"]: u["id"] for u in users}
            assert {u["name"]: u["roles"] for u in users}["bo"] == {
                "alpha": "member",
                "beta": "viewer",
            }
            # Demoted: the link abe made and nobody used opens nothing any more.
            owner_csrf = csrf_of(owner.get("/settings").text)
            demoted = owner.post(
                f"/settings/members/{ids['abe']}/role",
                data={"csrf_token": owner_csrf, "project": "alpha", "role": "member"},
            )
            assert demoted.status_code == 303
            with browser(srv) as late:
                assert late.get(links[1]).status_code == 404
                form = {"csrf_token": csrf_of(late.get("/login").text), "name": "cy"}
                form["password"] = PASSWORD
                assert late.post(links[1], data=form).status_code == 404
                assert log_in_as(late, "cy", PASSWORD).status_code == 401
            # Made admin again, the link works again: the maker's role decides, not a flag.
            owner.post(
                f"/settings/members/{ids['abe']}/role",
                data={"csrf_token": owner_csrf, "project": "alpha", "role": "admin"},
            )
            assert srv_get(srv, links[1]).status_code == 200
            removed = owner.post(
                f"/settings/users/{ids['abe']}/delete", data={"csrf_token": owner_csrf}
            )
            assert removed.status_code == 303
            assert srv_get(srv, links[1]).status_code == 404


def srv_get(server: Server, path: str) -> httpx2.Response:
    with browser(server) as b:
        return b.get(path)


def test_a_logged_in_user_joins_by_link_and_is_never_demoted(srv: Server) -> None:
    with login(srv) as owner:
        links = [invite(owner, "alpha", "admin"), invite(owner, "alpha", "viewer")]
        links.append(invite(owner, "beta", "viewer"))
    with accept(srv, links[0], "ida") as ida:
        for link in links[1:]:
            page = ida.get(link)
            assert "Join as ida" in page.text
            assert ida.post(link, data={"csrf_token": csrf_of(page.text)}).status_code == 303
        roles = {p["name"]: p["role"] for p in ida.get("/settings?format=json").json()["projects"]}
    assert roles == {"alpha": "admin", "beta": "viewer"}


def test_an_invitation_works_once_and_not_after_it_expires(srv: Server) -> None:
    with login(srv) as owner:
        link = invite(owner, "beta", "member")
    with accept(srv, link, "una"):
        pass
    with browser(srv) as late:
        page = late.get(link)
        assert page.status_code == 404 and "used, expired or unknown" in page.text
        again = late.post(
            link,
            data={
                "csrf_token": csrf_of(late.get("/login").text),
                "name": "eve",
                "password": PASSWORD,
            },
        )
        assert again.status_code == 404
        assert log_in_as(late, "eve", PASSWORD).status_code == 401  # no account was made
    # One that expired a second ago (made on the store, as a week-old one would be).
    store = open_store(str(srv.db))
    try:
        pid = store.ensure_project("beta")
        past = time.time_ns() // 1000 - 1_000_000
        from llmtap.server.dashboard.auth import sha256_hex

        store.create_invitation(sha256_hex("expired-token"), pid, "admin", None, 1, past)
    finally:
        store.close()
    with browser(srv) as late:
        assert late.get("/invite/expired-token").status_code == 404
        csrf = csrf_of(late.get("/login").text)
        refused = late.post(
            "/invite/expired-token", data={"csrf_token": csrf, "name": "eve", "password": PASSWORD}
        )
        assert refused.status_code == 404 and not logged_in(late)


def test_logout_password_change_and_removal_end_sessions_at_once(srv: Server) -> None:
    with login(srv) as owner:
        link = invite(owner, "alpha", "member")
        with accept(srv, link, "sam") as first, browser(srv) as second:
            assert log_in_as(second, "sam", PASSWORD).status_code == 303
            # A copy of the first session's cookie, as a thief would keep it.
            with browser(srv) as thief:
                thief.cookies.set("llmtap_session", first.cookies["llmtap_session"])
                assert logged_in(thief)
                # The password changed in the second session: the first (and its copy) end.
                csrf = csrf_of(second.get("/settings").text)
                new = PASSWORD + "-2"
                changed = second.post(
                    "/settings/password",
                    data={"csrf_token": csrf, "current": PASSWORD, "password": new},
                )
                assert changed.status_code == 200, changed.text
                assert not logged_in(first) and not logged_in(thief)
                assert first.get("/events").status_code == 303  # to the login page
                assert first.get("/events", params={"format": "json"}).status_code == 401
                assert logged_in(second)
                assert log_in_as(first, "sam", PASSWORD).status_code == 401
                assert log_in_as(first, "sam", new).status_code == 303
                # Logout ends that session, also for a copy of its cookie.
                thief.cookies.set("llmtap_session", first.cookies["llmtap_session"])
                first.post("/logout", data={"csrf_token": csrf_of(first.get("/settings").text)})
                assert not logged_in(thief)
            # Removed by the owner: the remaining session ends.
            sam = next(
                u
                for u in owner.get("/settings", params={"format": "json"}).json()["users"]
                if u["name"] == "sam"
            )
            removed = owner.post(
                f"/settings/users/{sam['id']}/delete",
                data={"csrf_token": csrf_of(owner.get("/settings").text)},
            )
            assert removed.status_code == 303
            assert not logged_in(second)
            assert log_in_as(second, "sam", new).status_code == 401


def test_reset_password_from_the_command_line_ends_sessions(srv: Server) -> None:
    made = subprocess.run(
        [*LLMTAP, "users", "create", "cli-user", "--password-stdin", "--project", "alpha"],
        input=PASSWORD + "\n",
        env={**os.environ, "LLMTAP_DB": str(srv.db)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    with browser(srv) as b:
        assert log_in_as(b, "cli-user", PASSWORD).status_code == 303
        assert b.get("/events", params={"format": "json"}).json()["project"] == "alpha"
        reset = subprocess.run(
            [
                *LLMTAP,
                "users",
                "reset-password",
                "cli-user",
                "--password-stdin",
                "--db",
                str(srv.db),
            ],
            input="another-long-password\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reset.returncode == 0, reset.stderr
        assert not logged_in(b)
        assert log_in_as(b, "cli-user", "another-long-password").status_code == 303
    listed = subprocess.run(
        [*LLMTAP, "users", "list", "--db", str(srv.db)], capture_output=True, text=True, timeout=60
    )
    assert "cli-user\t-\talpha:viewer" in listed.stdout
    assert f"{ADMIN_USER}\towner" in listed.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--role", "admin"], "--role needs --project"),
        (["--project", "alpah"], "no project 'alpah' (there are: alpha"),
    ],
)
def test_a_user_is_not_made_with_a_role_in_no_project(
    srv: Server, args: list[str], said: str
) -> None:
    """A role without a project had been dropped, and a project's typo made a project."""
    made = subprocess.run(
        [*LLMTAP, "users", "create", "eve", "--password-stdin", *args, "--db", str(srv.db)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 2 and said in made.stderr, made.stderr
    listed = subprocess.run(
        [*LLMTAP, "users", "list", "--db", str(srv.db)], capture_output=True, text=True, timeout=60
    )
    assert "eve" not in listed.stdout and "alpah" not in listed.stdout


def test_the_csrf_token_of_one_session_fails_in_another(srv: Server) -> None:
    with login(srv) as one, login(srv) as two:
        token_one = csrf_of(one.get("/settings").text)
        token_two = csrf_of(two.get("/settings").text)
        assert token_one != token_two
        form = {"project": "alpha", "role": "viewer"}
        refused = two.post("/settings/invitations", data={"csrf_token": token_one, **form})
        assert refused.status_code == 403 and "CSRF" in error_message(refused)
        # Nor does the login page's double-submit cookie stand in for the session's token.
        two.cookies.set("llmtap_csrf", "chosen")
        chosen = two.post("/settings/invitations", data={"csrf_token": "chosen", **form})
        assert chosen.status_code == 403
        assert two.post("/settings/invitations", data={"csrf_token": token_two, **form}).is_success


def test_concurrent_guesses_are_counted_before_any_password_is_checked(fresh: Server) -> None:
    with login(fresh):
        pass
    browsers = [browser(fresh, f"10.9.0.{i}") for i in range(40)]
    try:
        forms = [
            {"csrf_token": csrf_of(b.get("/login").text), "name": ADMIN_USER, "password": "no"}
            for b in browsers
        ]
        with ThreadPoolExecutor(len(browsers)) as pool:
            answers = list(
                pool.map(lambda b, f: b.post("/login", data=f, timeout=60), browsers, forms)
            )
    finally:
        for b in browsers:
            b.close()
    codes = sorted(a.status_code for a in answers)
    assert codes == [401] * 5 + [429] * 35, codes


def test_failed_logins_are_throttled_per_user_and_per_client(fresh: Server) -> None:
    with login(fresh):
        pass
    # Per user: five wrong passwords, each from another address; the sixth try is held back
    # even with the right password.
    for i in range(5):
        with browser(fresh, f"10.0.0.{i}") as b:
            assert log_in_as(b, ADMIN_USER, f"wrong-password-{i}").status_code == 401
    with browser(fresh, "10.0.1.1") as b:
        held = log_in_as(b, ADMIN_USER, ADMIN_PASSWORD)
    assert held.status_code == 429, held.text
    assert 0 < int(held.headers["retry-after"]) <= 15 * 60
    # Per client: twenty failures from one address, each for another name; then even a new
    # name from there is held back, while another address still gets an answer.
    for i in range(20):
        with browser(fresh, "10.0.2.2") as b:
            assert log_in_as(b, f"nobody-{i}", "wrong-password").status_code == 401
    with browser(fresh, "10.0.2.2") as b:
        assert log_in_as(b, "nobody-else", "wrong-password").status_code == 429
    with browser(fresh, "10.0.3.3") as b:
        assert log_in_as(b, "nobody-else", "wrong-password").status_code == 401
    log = stop_server(fresh)
    failures = [line for line in log.splitlines() if "dashboard login failed" in line]
    assert len(failures) == 26, log
    assert "'nobody-3'" in log and "10.0.2.2" in log
    assert "wrong-password" not in log and ADMIN_PASSWORD not in log


def test_a_huge_login_body_is_refused_before_it_is_read(srv: Server) -> None:
    host, port = srv.url.removeprefix("http://").split(":")
    # Declared: refused on the Content-Length alone, nothing of the body sent.
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nContent-Length: 10485760\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    # Streamed without a length: cut off past the cap, not buffered whole.
    started = time.monotonic()

    def chunks() -> Iterator[bytes]:
        for _ in range(160):
            yield b"a" * 65536  # 10 MiB in all

    try:
        response = httpx2.post(
            srv.url + "/login",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
        assert response.status_code == 413
    except httpx2.TransportError:
        pass  # the server answered and hung up before the client finished sending: also fine
    assert time.monotonic() - started < 10
    assert httpx2.get(srv.url + "/healthz").status_code == 200


def test_a_short_admin_token_is_refused_at_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [*LLMTAP, "serve", "--db", str(tmp_path / "s.db"), "--port", str(free_port())],
        env={**os.environ, "LLMTAP_ADMIN_TOKEN": "short-token"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "at least 16" in result.stderr and "short-token" not in result.stderr


def test_the_session_cookie_is_httponly_and_samesite(fresh: Server) -> None:
    with browser(fresh) as b:
        page = b.get("/login").text
        made = b.post(
            "/login",
            data={
                "csrf_token": csrf_of(page),
                "token": ADMIN_TOKEN,
                "name": ADMIN_USER,
                "password": ADMIN_PASSWORD,
            },
        )
    cookie = next(c for c in made.headers.get_list("set-cookie") if "llmtap_session=" in c)
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits, URL-safe base64
    attributes = cookie.lower()
    assert "httponly" in attributes and "samesite=lax" in attributes
    # The database keeps only the id's hash.
    assert value.encode() not in fresh.db.read_bytes()


def test_hostile_forms_get_a_clear_4xx(fresh: Server) -> None:
    """Odd bodies, fields and ids at every dashboard form, logged in (with a valid CSRF token)
    or not: each gets a 4xx in the one error shape (or the page again), never a 500. (A server
    of its own: the failed password changes lock its owner out for a while.)"""
    srv = fresh
    srv.new_key("alpha")
    big = str(2**70)
    paths = [
        "/login",
        "/invite/x",
        f"/invite/{'t' * 5000}",
        "/settings/keys",
        "/settings/password",
        "/settings/invitations",
        f"/settings/members/{big}/role",
        f"/settings/members/{big}/remove",
        f"/settings/users/{big}/delete",
        f"/settings/keys/{big}/revoke",
        f"/settings/keys/{big}/scopes",
        "/settings/members/1/role",
        "/settings/users/1/delete",
        "/logout",  # last: it ends the session the others are sent in
    ]
    fields = [
        "",
        "project=alpha&role=superuser",
        "project=alpha&role=admin&email=" + "e" * 300,
        "project=" + "p" * 3000,
        "name=%00%0A&password=" + "x" * 20,
        "name=" + "n" * 500 + "&password=" + "x" * 20,
        "current=&password=short",
        "role=viewer&project=%FF%FE",
        "&".join(f"f{i}=1" for i in range(150)),
    ]
    tried, statuses = 0, set()
    with login(srv) as owner:
        csrf = csrf_of(owner.get("/settings").text)
        for path in paths:
            bodies = [f"csrf_token={csrf}&{f}".encode() for f in fields] + [
                b"\xff\xfe\x00",
                b"csrf_token=%C3%A9",  # not ASCII
                b'{"csrf_token": "x"}',
                b"a" * 9000,
            ]
            for body in bodies:
                for client in (owner, httpx2):
                    response = client.post(
                        srv.url + path if client is httpx2 else path,
                        content=body,
                        headers={"content-type": "application/x-www-form-urlencoded"},
                    )
                    tried += 1
                    statuses.add(response.status_code)
                    assert response.status_code < 500, (path, body[:80], response.text)
                    if response.status_code >= 400 and "json" in response.headers.get(
                        "content-type", ""
                    ):
                        assert response.json()["ok"] is False
    print(f"{tried} hostile form posts, statuses {sorted(statuses)}")
    assert tried >= 300 and 500 not in statuses


def test_logout_reaches_every_worker_at_once(tmp_path: Path) -> None:
    """Sessions live in the store, not in a worker's memory: once logged out, the old cookie
    opens nothing in any of the workers that share the port."""
    port = free_port()
    process = subprocess.Popen(
        [*LLMTAP, "serve", "--db", str(tmp_path / "w.db"), "--port", str(port), "--workers", "2"],
        env={**os.environ, "LLMTAP_ADMIN_TOKEN": ADMIN_TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the workers too are stopped at the end
    )
    server = Server(f"http://127.0.0.1:{port}", tmp_path / "w.db", process)
    try:
        wait_for(server.url + "/healthz", timeout=90)  # two processes starting on a busy box
        with login(server) as b:
            cookies = {"llmtap_session": b.cookies["llmtap_session"]}

            def answers() -> list[int]:
                # A new connection each, so the kernel spreads them over both workers.
                url = server.url + "/settings?format=json"
                return [httpx2.get(url, cookies=cookies).status_code for _ in range(10)]

            assert answers() == [200] * 10
            b.post("/logout", data={"csrf_token": csrf_of(b.get("/settings").text)})
            assert answers() == [401] * 10
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
