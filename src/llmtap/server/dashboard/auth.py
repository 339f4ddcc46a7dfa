"""Who may see the dashboard: whoever holds the admin token.

The token is set with ``LLMTAP_ADMIN_TOKEN`` (required to bind beyond loopback), or made at
first start and printed once. Only its hash is stored. Logging in gives a signed session cookie
(7 days); every form carries a CSRF token that must match the ``llmtap_csrf`` cookie
(double-submit), and the cookies are SameSite, so another site can neither read nor forge a
request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...store import Store
from ...store._admin import get_meta, set_meta
from ..errors import ApiError

__all__ = ["AdminAuth", "ensure_admin_token"]

SESSION_COOKIE = "llmtap_session"
CSRF_COOKIE = "llmtap_csrf"
SESSION_SECONDS = 7 * 24 * 3600
_HASH_KEY = "admin_token_sha256"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_admin_token(store: Store, configured: str | None) -> str | None:
    """Make sure an admin token exists. With ``configured``, that one (its hash replaces any
    stored one). Without, the stored one; with none stored, a new one, returned so the caller
    can print it once (it is not kept anywhere in clear)."""
    if configured:
        set_meta(store, _HASH_KEY, _sha256(configured))
        return None
    if get_meta(store, _HASH_KEY):
        return None
    token = secrets.token_urlsafe(24)
    set_meta(store, _HASH_KEY, _sha256(token))
    return token


class AdminAuth:
    def __init__(self, store: Store) -> None:
        stored = get_meta(store, _HASH_KEY)
        if stored is None:
            raise RuntimeError("no admin token: call ensure_admin_token first")
        self._hash = stored
        # Derived from the token's hash: the same in every worker and across restarts, and a
        # new token ends every session.
        secret = hmac.new(stored.encode(), b"llmtap-session", hashlib.sha256).hexdigest()
        self._signer = URLSafeTimedSerializer(secret, salt="llmtap-session")

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(_sha256(token), self._hash)

    def logged_in(self, request: Request) -> bool:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return False
        try:
            self._signer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return False
        return True

    def start_session(self, response: Response, secure: bool) -> None:
        value = self._signer.dumps({"admin": True})
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="lax",
            secure=secure,
        )

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE)


def csrf_token(request: Request) -> str:
    """The CSRF token for this browser (made on first sight; set by :func:`set_csrf_cookie`)."""
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


async def check_csrf(request: Request) -> Any:
    """The submitted form, once its CSRF token matches the cookie's; else a 403."""
    form = await request.form()
    sent, expected = form.get("csrf_token"), request.cookies.get(CSRF_COOKIE)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise ApiError(403, "CSRF check failed: reload the page and try again")
    return form


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
