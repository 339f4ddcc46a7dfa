"""Every llmtap setting, in one table.

Each setting has a name, a default, a help text and an ``LLMTAP_*`` environment variable, and
is resolved in one order by :func:`resolve`: the explicit argument, else the environment,
else the default. The SDK's :class:`llmtap.Config`, the CLI and the server all read from here,
so a setting means the same thing everywhere and is documented once (``llmtap settings``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SETTINGS", "Setting", "resolve"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    kind: type  # str, int, float, bool or dict
    scope: str  # "sdk" or "server"

    @property
    def env(self) -> str:
        return "LLMTAP_" + self.name.upper()

    def parse(self, raw: str) -> Any:
        """Turn an environment variable's text into a value of this setting's kind."""
        raw = raw.strip()
        if self.kind is bool:
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"{self.env}={raw!r}: expected one of 1/0, true/false, yes/no")
        if self.kind is dict:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError(f"{self.env} must be a JSON object")
            return value
        try:
            return self.kind(raw)
        except ValueError:
            raise ValueError(f"{self.env}={raw!r}: expected a {self.kind.__name__}") from None


DEFAULT_URL = "http://127.0.0.1:7420"

_TABLE = [
    # -- SDK: what is recorded ----------------------------------------------------------
    Setting("api_key", None, "llmtap API key; decides the project and environment.", str, "sdk"),
    Setting("url", DEFAULT_URL, "Address of the llmtap server.", str, "sdk"),
    Setting("enabled", True, "Record calls at all; 0 turns recording off.", bool, "sdk"),
    Setting(
        "prompt_template_name",
        None,
        "Template name for calls that give none.",
        str,
        "sdk",
    ),
    Setting(
        "allow_unnamed_prompts",
        True,
        "Record calls without a template name (under a name derived from the template).",
        bool,
        "sdk",
    ),
    Setting("redact_pii", False, "Redact personal data before it leaves the process.", bool, "sdk"),
    Setting("chat_id", None, "Chat id for calls that give none.", str, "sdk"),
    Setting("attributes", None, "JSON object merged into every event's attributes.", dict, "sdk"),
    Setting("sample_rate", 1.0, "Fraction of calls recorded, from 0 to 1.", float, "sdk"),
    # -- SDK: how events are delivered ---------------------------------------------------
    Setting(
        "flush_timeout",
        2.0,
        "Seconds the process may spend delivering queued events at exit or close().",
        float,
        "sdk",
    ),
    Setting("batch_size", 100, "Events sent in one request at most.", int, "sdk"),
    Setting(
        "flush_interval",
        0.5,
        "Seconds an event may wait in the queue for a batch to fill.",
        float,
        "sdk",
    ),
    Setting(
        "max_queue",
        10_000,
        "Events held in memory at most; past that new events are dropped and counted.",
        int,
        "sdk",
    ),
    Setting(
        "raise_internal_errors",
        False,
        "Raise llmtap's own errors instead of logging them (for llmtap's test suite).",
        bool,
        "sdk",
    ),
    # -- Server ----------------------------------------------------------------------------
    Setting(
        "db",
        "llmtap.db",
        "Store: a SQLite file path, or a postgresql:// URL.",
        str,
        "server",
    ),
    Setting("host", "127.0.0.1", "Address the server binds to.", str, "server"),
    Setting(
        "admin_token",
        None,
        "Token that opens the dashboard; needed to bind beyond loopback.",
        str,
        "server",
    ),
    Setting("port", 7420, "Port the server listens on.", int, "server"),
    Setting(
        "max_body_bytes",
        32 * 1024 * 1024,
        "Largest request body the server accepts, in bytes (413 past it).",
        int,
        "server",
    ),
]

SETTINGS: dict[str, Setting] = {s.name: s for s in _TABLE}


def resolve(name: str, value: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """The value of setting ``name``: ``value`` if given, else its environment variable, else
    its default."""
    if value is not None:
        return value
    setting = SETTINGS[name]
    raw = (os.environ if environ is None else environ).get(setting.env)
    if raw is not None and raw.strip() != "":
        return setting.parse(raw)
    return setting.default
