"""API keys: made here, stored only as a hash, looked up (with a short cache) per request.

A key belongs to one project and one environment: events it sends land there, and it reads
only its own project's events. What it may do is its scopes:

- ``ingest``: send events and feedback, nothing else (the default: the key every monitored
  application carries, and so the one that leaks);
- ``read``: query the project (events, stats, templates, prices); with ``env_only``, only the
  events of the key's own environment;
- ``admin``: change the project (prices, deletes); implies ``read``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..store import KEYS_CHANGED, EventFilter, KeyInfo, Store
from .errors import ApiError

__all__ = [
    "SCOPES",
    "KeyCache",
    "check_scopes",
    "confine",
    "create_key",
    "hash_key",
    "names_problem",
    "project_wide",
    "project_wide_key",
    "refuse_one_environment",
]

SCOPES = ("ingest", "read", "admin")
_IMPLIED = {"read": {"read", "admin"}, "ingest": {"ingest"}, "admin": {"admin"}}
_DOING = {"ingest": "send events", "read": "read this project", "admin": "change this project"}

KEY_PREFIX = "lt_"
_CACHE_SECONDS = 30.0  # how long a key's scopes are read from the cache
# How often each server looks whether a key was revoked or rescoped (by any process): how
# long a revoked key may still work there.
_CHANGES_EVERY = 1.0


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is safe here (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """``scopes`` in their canonical order; a ValueError naming one that is not a scope."""
    asked = set(scopes)
    unknown = sorted(asked - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}: expected {', '.join(SCOPES)}")
    if not asked:
        raise ValueError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return [s for s in SCOPES if s in asked]


def create_key(
    store: Store,
    project: str,
    environment: str = "dev",
    scopes: Iterable[str] = ("ingest",),
    env_only: bool = False,
) -> str:
    """A new key for ``project`` and ``environment`` that may do ``scopes``; only its hash is
    stored. A ValueError for a name ``names_problem`` refuses."""
    problem = names_problem(project, environment)
    if problem:
        raise ValueError(problem)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    store.create_key(project, environment, hash_key(key), key[:10], check_scopes(scopes), env_only)
    return key


MAX_NAME = 200  # characters of a project's or an environment's name


def names_problem(project: str, environment: str) -> str | None:
    """Why a key cannot be made for ``project`` and ``environment``, or None: each 1 to
    ``MAX_NAME`` printable characters, no space at either end. An empty project's name had
    sorted first and become every page's default; a name of 5,000 characters, or with a line
    break, had been carried by every event its key sent."""
    for what, name in (("project", project), ("environment", environment)):
        if not name or len(name) > MAX_NAME:
            return f"a {what} is named with 1 to {MAX_NAME} characters"
        if not name.isprintable() or name != name.strip():
            return f"a {what}'s name is printable characters, with no space at either end: {name!r}"
    return None


def confine(key: KeyInfo, f: EventFilter) -> EventFilter:
    """``f`` narrowed to what ``key`` may read: its own environment for an ``env_only`` key
    (a 403 when the filter asks for another)."""
    if key.env_only:
        if f.environment not in (None, key.environment):
            raise ApiError(403, f"this key reads only the environment {key.environment!r}")
        f.environment = key.environment
    return f


def project_wide(key: KeyInfo, what: str) -> KeyInfo:
    """``key``, for data that spans every environment of its project (``what``: "templates",
    "alerts"...): a 403 for a key that reads only its own environment."""
    refuse_one_environment(key.environment if key.env_only else None, what)
    return key


def refuse_one_environment(environment: str | None, what: str) -> None:
    """A 403 when the caller reads only ``environment`` (None: every one) and ``what`` spans
    every environment of the project."""
    if environment is not None:
        raise ApiError(
            403,
            f"this key reads only the environment {environment!r}; "
            f"{what} span every environment of the project",
        )


async def project_wide_key(request: Request, scope: str, what: str) -> KeyInfo:
    """The request's key with ``scope``, for ``what`` (see ``project_wide``)."""
    key: KeyInfo = await run_in_threadpool(request.app.state.keys.authenticate, request, scope)
    return project_wide(key, what)


class KeyCache:
    """Keys by hash, read from the store at most every ``_CACHE_SECONDS``; all forgotten
    within ``_CHANGES_EVERY`` of a key revoked or rescoped anywhere (the store's
    ``KEYS_CHANGED`` value changes with each), at once on the process that did it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[KeyInfo | None, float]] = {}
        self._lock = threading.Lock()
        self._changes_seen: str | None = None
        self._changes_read = -_CHANGES_EVERY  # monotonic time of the last look

    def changed(self) -> None:
        """A key was revoked or rescoped here: forget every key now."""
        with self._lock:
            self._cache.clear()
            self._changes_read = -_CHANGES_EVERY

    def _forget_changed(self, now: float) -> None:
        if now - self._changes_read < _CHANGES_EVERY:
            return
        self._changes_read = now
        seen = self._store.get_meta(KEYS_CHANGED)
        if seen != self._changes_seen:
            with self._lock:
                self._cache.clear()
                self._changes_seen = seen

    def authenticate(self, request: Request, scope: str) -> KeyInfo:
        """The key the request carries, when it holds ``scope``; else a 401 (no valid key) or
        a 403 naming the missing scope."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>'")
        digest = hash_key(key.strip())
        now = time.monotonic()
        self._forget_changed(now)
        cached = self._cache.get(digest)
        if cached is None or cached[1] < now:
            info = self._store.key_by_hash(digest)
            with self._lock:
                if len(self._cache) > 10_000:  # random keys must not grow it without end
                    self._cache.clear()
                self._cache[digest] = (info, now + _CACHE_SECONDS)
        else:
            info = cached[0]
        if info is None:
            raise ApiError(401, "invalid API key")
        if not info.scopes & _IMPLIED[scope]:
            raise ApiError(
                403,
                f"this key may not {_DOING[scope]}: it lacks the {scope!r} scope (it has: "
                f"{', '.join(sorted(info.scopes))}); give it the scope in the dashboard's "
                f"settings, or make one with `llmtap keys create --scope {scope}`",
                [{"missing_scope": scope, "scopes": sorted(info.scopes)}],
            )
        return info
