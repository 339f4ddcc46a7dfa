"""Who may see the dashboard: named users, each with a role per project.

- Passwords are stored as argon2id hashes (pwdlib), never in clear.
- A session is a random id (256 bits) in an HttpOnly, SameSite cookie; the store keeps only its
  hash, with the session's CSRF token, and every request looks it up: logout, a password change
  or a user's removal end it at once, in every worker process. No signing key exists, so there
  is no secret to derive or to keep beside the database: a copy of the database holds only
  hashes, and mints no session.
- Every form carries the session's CSRF token; the login and invitation forms (no session yet)
  a double-submit cookie's.
- Failed logins are counted in the store (shared by all workers) and throttled per user and
  per client address; each is logged at warning, without the password.
- While no user exists, the admin token (``LLMTAP_ADMIN_TOKEN``, or made at first start) is the
  bootstrap credential that creates the first user, the owner; after that it opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pwdlib import PasswordHash
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...store import Store, UserRecord
from ..errors import ApiError

__all__ = [
    "MAX_NAME",
    "MIN_PASSWORD",
    "MIN_TOKEN",
    "SESSION_COOKIE",
    "AdminAuth",
    "User",
    "account_problem",
    "check_csrf",
    "csrf_token",
    "current_user",
    "ensure_admin_token",
    "hash_password",
    "now_us",
    "read_form",
    "sha256_hex",
]

log = logging.getLogger("llmtap.server")

SESSION_COOKIE = "llmtap_session"
CSRF_COOKIE = "llmtap_csrf"
SESSION_SECONDS = 7 * 24 * 3600
MIN_TOKEN = 16
MIN_PASSWORD = 12
MAX_NAME = 200
_HASHER = PasswordHash.recommended()  # argon2id, with the parameters pwdlib recommends
# Throttle: past this many failures in the window, a login is answered 429 until the oldest
# of them leaves the window.
WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_CLIENT = 20
_HASH_KEY = "admin_token_sha256"
_USER_SCOPE = "llmtap_user"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def now_us() -> int:
    return time.time_ns() // 1000


def ensure_admin_token(store: Store, configured: str | None) -> str | None:
    """Make sure an admin token exists. With ``configured``, that one (its hash replaces any
    stored one; shorter than ``MIN_TOKEN`` is refused with ValueError). Without, the stored
    one; with none stored, a new one, returned so the caller can print it once (it is not kept
    anywhere in clear)."""
    if configured:
        if len(configured) < MIN_TOKEN:
            raise ValueError(
                f"the admin token is {len(configured)} characters long: use at least "
                f"{MIN_TOKEN} (for instance: python -c 'import secrets; "
                "print(secrets.token_urlsafe(24))')"
            )
        store.set_meta(_HASH_KEY, sha256_hex(configured))
        return None
    if store.get_meta(_HASH_KEY):
        return None
    token = secrets.token_urlsafe(24)
    store.set_meta(_HASH_KEY, sha256_hex(token))
    return token


def hash_password(password: str) -> str:
    """The argon2id hash to store (slow on purpose: call it in a thread from a page)."""
    return _HASHER.hash(password)


def account_problem(name: str, password: str) -> str | None:
    """Why a new account's name or password will not do, if it will not."""
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return f"A name of 1 to {MAX_NAME} printable characters is needed."
    if len(password) < MIN_PASSWORD:
        return f"The password needs at least {MIN_PASSWORD} characters."
    return None


@dataclass(frozen=True)
class User:
    """The person behind a request: who, and their role in each project they may see."""

    id: int
    name: str
    is_owner: bool
    csrf: str
    session_hash: str
    roles: dict[str, tuple[int, str]]  # project name -> (project id, role)

    def role(self, project: str) -> str | None:
        found = self.roles.get(project)
        return None if found is None else found[1]

    def may_admin(self, project: str) -> bool:
        return self.is_owner or self.role(project) == "admin"


def current_user(request: Request) -> User | None:
    """The logged-in user, if the request has one (looked up by the page's guard)."""
    user = request.scope.get(_USER_SCOPE)
    return user if isinstance(user, User) else None


def user_of(request: Request) -> User:
    """The logged-in user (the guard in ``dashboard/__init__`` put it there)."""
    user = current_user(request)
    if user is None:
        raise ApiError(401, "log in first")
    return user


def require_admin(request: Request, project: str) -> User:
    """The user, when they may manage ``project``; a 403 otherwise."""
    user = user_of(request)
    if not user.may_admin(project):
        raise ApiError(403, f"managing project {project!r} needs its admin role")
    return user


class AdminAuth:
    """Checks credentials and keeps sessions; its methods block (hashing, the store), so the
    pages call them in a thread."""

    def __init__(self, store: Store) -> None:
        stored = store.get_meta(_HASH_KEY)
        if stored is None:
            raise RuntimeError("no admin token: call ensure_admin_token first")
        self.store = store
        self._hash = stored

    @cached_property
    def _decoy(self) -> str:
        # Checked against when the name is unknown, so that an unknown name takes as long to
        # refuse as a wrong password. Made on first use: a server starts without hashing.
        return hash_password(secrets.token_urlsafe(16))

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(sha256_hex(token), self._hash)

    def needs_bootstrap(self) -> bool:
        return self.store.count_users() == 0

    def check_password(self, name: str, password: str) -> UserRecord | None:
        """The user, when ``password`` is theirs."""
        found = self.store.user_by_name(name)
        ok = _HASHER.verify(password, found["password_hash"] if found else self._decoy)
        return found if ok and found else None

    def throttled(self, client: str, name: str) -> int:
        """Seconds to wait before trying again (0: go ahead)."""
        now = now_us()
        since = now - WINDOW_SECONDS * 1_000_000
        n_name, n_client, old_name, old_client = self.store.count_failures(client, name, since)
        oldest = [
            old
            for n, old, limit in (
                (n_name, old_name, MAX_FAILURES_PER_USER),
                (n_client, old_client, MAX_FAILURES_PER_CLIENT),
            )
            if n >= limit and old is not None
        ]
        if not oldest:
            return 0
        return max(1, (min(oldest) - since) // 1_000_000 + 1)

    def attempt(self, client: str, name: str) -> int:
        """Count a login attempt as failed before its password is checked (a success
        clears it), so that concurrent guesses are all counted before any is answered:
        seconds to wait before trying again, 0 when this attempt may go ahead."""
        limits = (MAX_FAILURES_PER_USER, MAX_FAILURES_PER_CLIENT)
        if self.store.record_failure(client, name, now_us(), WINDOW_SECONDS * 1_000_000, limits):
            return 0
        return max(1, self.throttled(client, name))

    def failed(self, client: str, name: str, why: str) -> None:
        """Log a failed attempt (counted already by :meth:`attempt`)."""
        log.warning("dashboard login failed (%s) for %r from %s", why, name, client)

    def start_session(self, user_id: int, name: str) -> str:
        """A new session for the user; its id (for the cookie, never stored)."""
        self.store.clear_failures(name)
        session_id = secrets.token_urlsafe(32)
        now = now_us()
        self.store.create_session(
            user_id,
            sha256_hex(session_id),
            secrets.token_urlsafe(24),
            now,
            now + SESSION_SECONDS * 1_000_000,
        )
        return session_id

    def user(self, request: Request) -> User | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id or len(session_id) > 100:
            return None
        id_hash = sha256_hex(session_id)
        found = self.store.session_user(id_hash, now_us())
        if found is None:
            return None
        return User(
            found["id"], found["name"], found["is_owner"], found["csrf"], id_hash, found["roles"]
        )

    def end_session(self, user: User) -> None:
        self.store.revoke_session(user.session_hash, now_us())


def set_session_cookie(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",  # lax: a link from elsewhere still opens the page, logged in
        secure=request.url.scheme == "https",
    )


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- forms and CSRF ------------------------------------------------------------------------


async def read_form(request: Request) -> FormData:
    """The URL-encoded form of a POST. Its size is bounded before it is read, by the app's
    ``FormLimit`` (``max_form_bytes``): the login form is open to anyone."""
    body = await request.body()
    try:
        fields = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the form could not be read") from None
    return FormData(list[tuple[str, Any]](fields))


def csrf_token(request: Request) -> str:
    """The CSRF token forms on this page carry: the session's, or (not logged in) the
    double-submit cookie's, made on first sight and set by :func:`set_csrf_cookie`."""
    user = current_user(request)
    if user is not None:
        return user.csrf
    token = request.cookies.get(CSRF_COOKIE) or request.scope.get("llmtap_new_csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.scope["llmtap_new_csrf"] = token
    return str(token)


def set_csrf_cookie(request: Request, response: Response) -> None:
    new = request.scope.get("llmtap_new_csrf")
    if new and not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(
            CSRF_COOKIE, new, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )


async def check_csrf(request: Request) -> FormData:
    """The submitted form, once its CSRF token is the session's (or, before login, the
    cookie's); else a 403."""
    form = await read_form(request)
    user = current_user(request)
    expected = user.csrf if user is not None else request.cookies.get(CSRF_COOKIE)
    sent = form.get("csrf_token")
    # Compared as bytes: compare_digest refuses str with characters past ASCII.
    if (
        not expected
        or not isinstance(sent, str)
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise ApiError(403, "CSRF check failed: reload the page and try again")
    return form


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


async def logged_in_user(request: Request) -> User | None:
    """Look up the request's session (in a thread: it reads the store) and remember the user
    for the page."""
    user = await run_in_threadpool(request.app.state.admin.user, request)
    if user is not None:
        request.scope[_USER_SCOPE] = user
    return user
