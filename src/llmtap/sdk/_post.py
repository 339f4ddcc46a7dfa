"""One batch to the server: a POST, and what its answer means for the batch (delivered, some
events refused, retry later, too large). Used by the exporter's sending thread only."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx2

from .._version import __version__
from ._config import Settings

__all__ = ["EVENTS_PATH", "FEEDBACK_PATH", "Outcome", "Poster"]

EVENTS_PATH, FEEDBACK_PATH = "/api/v1/events", "/api/v1/feedback"
# Not taken this time, the batch kept to send again: the server's or a proxy's trouble (any
# 5xx: Cloudflare's 52x too; a 404 from a proxy in front of a server being deployed), not a
# verdict on the events.
_RETRY_STATUS = frozenset({404, 408, 425, 429, *range(500, 600)})
_HEADERS = {"content-type": "application/json", "user-agent": f"llmtap-python/{__version__}"}

# "done": answered for good (some events possibly refused), "retry": not taken this time,
# "split": too large for the server, "gone": nothing left to send (a damaged spool file).
Outcome = Literal["done", "retry", "split", "gone"]


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx2's default context (the CA bundle, or SSL_CERT_FILE/SSL_CERT_DIR), built once
    per process: loading the CA bundle costs about 30 ms of CPU, and each client of an
    application (a prompt-test run makes one per run) starts an exporter of its own."""
    return httpx2.create_ssl_context()


class Poster:
    """Posts batches to one server with one key; ``warn`` logs (rate-limited) what goes wrong."""

    def __init__(self, settings: Settings, warn: Callable[..., None]) -> None:
        self._url = settings.url
        parts = urlsplit(settings.url)
        # What the logs show: no user and password the URL may carry.
        self._shown = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._headers = dict(_HEADERS)
        if settings.api_key:
            self._headers["authorization"] = f"Bearer {settings.api_key}"
        self._warn = warn
        self._http: httpx2.Client | None = None

    def post(self, path: str, body: bytes, count: int) -> tuple[Outcome, int]:
        """(outcome, how many of the ``count`` events the server refused for good)."""
        if self._http is None:
            self._http = httpx2.Client(timeout=httpx2.Timeout(10.0, connect=2.0), verify=_tls())
        try:
            response = self._http.post(self._url + path, content=body, headers=self._headers)
        except httpx2.HTTPError as exc:
            shown = str(exc).replace(self._url, self._shown)
            self._warn("unreachable", "llmtap: server %s unreachable: %s", self._shown, shown)
            return "retry", 0
        status = response.status_code
        if status in _RETRY_STATUS:
            self._warn("retry-status", "llmtap: server answered %d, will retry", status)
            return "retry", 0
        if status == 413 and path == EVENTS_PATH and count > 1:
            return "split", 0
        refused = count if status >= 300 else _refused(response, count)
        if refused:
            self._log_refusal(response, count)
        return "done", refused

    def _log_refusal(self, response: httpx2.Response, count: int) -> None:
        detail = _answer(response) or {"error": response.text[:200]}
        self._warn(
            f"rejected-{response.status_code}",
            "llmtap: server refused events (%d sent, HTTP %d): %s %s",
            count,
            response.status_code,
            detail.get("error"),
            (detail.get("errors") or [])[:3],
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def _answer(response: httpx2.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _refused(response: httpx2.Response, count: int) -> int:
    """How many of the ``count`` events sent the server refused (it names each invalid one)."""
    answer = _answer(response)
    if answer is None or not answer.get("errors"):
        return 0
    rejected = answer.get("rejected")
    if isinstance(rejected, int) and 0 <= rejected <= count:
        return rejected
    return min(len(answer["errors"]), count)
