"""API keys: made here, stored only as a hash, looked up (with a short cache) per request.

A key belongs to one project and one environment: events it sends land there, and it reads
only its own project's events.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

from starlette.requests import Request

from ..store import KeyInfo, Store
from .errors import ApiError

__all__ = ["KeyCache", "create_key", "hash_key"]

KEY_PREFIX = "lt_"
_CACHE_SECONDS = 30.0  # how long a revoked key may still work on a running server


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is safe here (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: Store, project: str, environment: str = "dev") -> str:
    """A new key for ``project`` and ``environment``; only its hash is stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    store.create_key(project, environment, hash_key(key), key[:10])
    return key


class KeyCache:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[KeyInfo | None, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, request: Request) -> KeyInfo:
        """The key the request carries, or a 401."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>'")
        digest = hash_key(key.strip())
        now = time.monotonic()
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
        return info
