"""``Config`` (given once, to the client) and ``CallParams`` (given to one call)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..pii import check_mode, pseudonym_key
from ..pii import require as require_pii
from ..settings import resolve

__all__ = ["CallParams", "Config", "Settings", "mask_key"]

log = logging.getLogger("llmtap")


def mask_key(key: str) -> str:
    """Enough of a key to tell keys apart in a log, never enough to use it: ``lt_abc…``."""
    return key[: min(6, len(key) // 4)] + "…"


def _repr_with_key_masked(self: Any) -> str:
    # Configs end up in logs, tracebacks and debuggers: the key must not go with them.
    shown = (
        f"{f.name}={mask_key(v) if f.name == 'api_key' and isinstance(v, str) else v!r}"
        for f in fields(self)
        if f.repr and (v := getattr(self, f.name)) is not None
    )
    return f"{type(self).__name__}({', '.join(shown)})"


@dataclass
class Config:
    """How a client records. Every field is optional; unset fields come from the ``LLMTAP_*``
    environment variables, else the defaults (see ``llmtap.settings``)."""

    api_key: str | None = None
    url: str | None = None
    prompt_template_name: str | None = None
    allow_unnamed_prompts: bool | None = None
    redact_pii: bool | str | None = None
    pii_secret: str | None = field(default=None, repr=False)
    chat_id: str | None = None
    attributes: dict[str, Any] | None = None
    sample_rate: float | None = None
    enabled: bool | None = None
    stream_usage: bool | None = None
    estimate_usage: bool | None = None
    flush_timeout: float | None = None
    batch_size: int | None = None
    flush_interval: float | None = None
    max_queue: int | None = None
    spool_dir: str | None = None
    spool_max_bytes: int | None = None

    __repr__ = _repr_with_key_masked

    @classmethod
    def coerce(cls, value: Config | Mapping[str, Any] | None) -> Config:
        if value is None:
            return cls()
        if isinstance(value, Config):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        raise TypeError(f"llmtap= takes a llmtap.Config or a dict, not {type(value).__name__}")

    def merged(self, other: Config | Mapping[str, Any] | None) -> Config:
        """This config with the fields ``other`` sets replaced."""
        if other is None:
            return self
        other = Config.coerce(other)
        changes = {f.name: v for f in fields(other) if (v := getattr(other, f.name)) is not None}
        return dataclasses.replace(self, **changes)

    def resolve(self) -> Settings:
        values = {f.name: resolve(f.name, getattr(self, f.name)) for f in fields(self)}
        values["raise_internal_errors"] = resolve("raise_internal_errors")
        values["url"] = values["url"].rstrip("/")
        # Either below would keep the exporter's threads busy for ever doing nothing.
        if values["batch_size"] < 1:
            raise ValueError(f"batch_size: at least 1 event a request, not {values['batch_size']}")
        if not values["flush_interval"] >= 0.01:
            raise ValueError(f"flush_interval: at least 0.01 s, not {values['flush_interval']}")
        if values["redact_pii"]:
            check_mode(values["redact_pii"], values["pii_secret"])
            require_pii()  # at client start-up, not at the first call: say what to install
        return Settings(**values)


@dataclass(frozen=True)
class Settings:
    """A :class:`Config` with every field resolved; what the recorder and exporter read."""

    @property
    def pii_key(self) -> bytes | None:
        """The pseudonyms' key (``redact_pii="pseudonymize"``), else None."""
        return pseudonym_key(self.redact_pii, self.pii_secret)

    api_key: str | None
    url: str
    prompt_template_name: str | None
    allow_unnamed_prompts: bool
    redact_pii: bool | str
    pii_secret: str | None = field(repr=False)
    chat_id: str | None
    attributes: dict[str, Any] | None
    sample_rate: float
    enabled: bool
    stream_usage: bool
    estimate_usage: bool
    flush_timeout: float
    batch_size: int
    flush_interval: float
    max_queue: int
    spool_dir: str | None
    spool_max_bytes: int
    raise_internal_errors: bool

    __repr__ = _repr_with_key_masked


@dataclass
class CallParams:
    """What llmtap should know about one call. Every field is optional."""

    prompt_template_name: str | None = None
    template_params: dict[str, Any] | None = None
    template_chat: list[dict[str, Any]] | None = None
    template_text: str | None = None
    chat_id: Any = None
    chain_id: Any = None
    parent_event_id: Any = None
    event_id: Any = None
    feedback_key: str | None = None
    attributes: dict[str, Any] | None = None

    @classmethod
    def coerce(cls, value: CallParams | Mapping[str, Any] | None) -> CallParams:
        if value is None:
            return _EMPTY
        if isinstance(value, CallParams):
            return value
        if isinstance(value, Mapping):
            known = {k: v for k, v in value.items() if k in _CALL_FIELDS}
            if len(known) != len(value):
                # A typo here must not break the user's call: say so and go on.
                log.warning("llmtap: ignoring unknown call params %s", sorted(value.keys() - known))
            return cls(**known)
        log.warning("llmtap: llmtap= takes CallParams or a dict, not %s", type(value).__name__)
        return _EMPTY


_CALL_FIELDS = frozenset(f.name for f in fields(CallParams))
_EMPTY = CallParams()
