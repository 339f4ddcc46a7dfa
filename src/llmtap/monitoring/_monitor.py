"""The monitor: one llmtap client, and the stream's names stamped on every event."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from ..sdk import AsyncClient, Client, Config
from ..settings import resolve

__all__ = ["Monitor", "current_monitor", "init_monitor"]

log = logging.getLogger("llmtap")


class Monitor:
    """Where ``llmtap.monitoring.openai`` records to: ``client`` (an :class:`llmtap.Client`)
    and ``attributes`` (the stream's names, on every event)."""

    def __init__(
        self,
        stream: str | None = None,
        *,
        llmtap: Config | Mapping[str, Any] | None = None,
        **openai_kwargs: Any,
    ) -> None:
        entity, project, name = _split(stream)
        self.entity, self.project, self.stream = entity, project, name
        self.attributes = {
            k: v
            for k, v in (
                ("monitor_entity", entity),
                ("monitor_project", project),
                ("monitor_stream", name),
            )
            if v
        }
        config = Config.coerce(llmtap)
        attributes = {**(config.attributes or {}), **self.attributes}
        self.config = config.merged({"attributes": attributes})
        self._openai_kwargs = openai_kwargs
        self._client: Client | None = None
        self._async_client: AsyncClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The client calls go through, made on first use (so that ``OPENAI_API_KEY`` may be
        set after ``init_monitor``)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = Client(llmtap=self.config, **self._openai_kwargs)
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        if self._async_client is None:
            with self._lock:
                if self._async_client is None:
                    self._async_client = AsyncClient(llmtap=self.config, **self._openai_kwargs)
        return self._async_client

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every recorded call is delivered; True when nothing is left."""
        return self.client.flush(timeout)

    def __repr__(self) -> str:
        return f"Monitor({'/'.join([self.entity or '', self.project or '', self.stream or ''])!r})"


def _split(stream: str | None) -> tuple[str | None, str | None, str | None]:
    """ "entity/project/stream" (entity may be empty: "/weave/logs"), "project/stream" or
    "stream"."""
    if not stream:
        return None, None, None
    parts = stream.split("/")
    if len(parts) > 3:
        raise ValueError(f"init_monitor takes 'entity/project/stream', got {stream!r}")
    padded: list[str | None] = [None for _ in range(3 - len(parts))]
    padded.extend(p or None for p in parts)
    return padded[0], padded[1], padded[2]


_current: Monitor | None = None
_current_lock = threading.Lock()


def init_monitor(
    stream: str | None = None,
    *,
    llmtap: Config | Mapping[str, Any] | None = None,
    **openai_kwargs: Any,
) -> Monitor:
    """Start recording ``llmtap.monitoring.openai`` calls into ``"entity/project/stream"``.

    ``llmtap=`` takes an :class:`llmtap.Config` (else ``LLMTAP_*`` variables); other keyword
    arguments go to the openai client (else ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``)."""
    global _current
    monitor = Monitor(stream, llmtap=llmtap, **openai_kwargs)
    with _current_lock:
        _current = monitor
    if monitor.stream:  # "Running this cell will print out a link" (the seed's notebook)
        base = str(resolve("url", monitor.config.url)).rstrip("/")
        where = urlencode({"attributes.monitor_stream": monitor.stream})
        print(f"llmtap: monitoring into {stream!r}: {base}/events?{where}")
    return monitor


def current_monitor() -> Monitor:
    """The monitor of the last ``init_monitor``, or one with no stream names if none."""
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = Monitor()
    return _current
