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

__all__ = ["SETTINGS", "Setting", "markdown_table", "resolve"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    kind: type  # str, int, float, bool or dict
    scope: str  # "sdk" or "server"
    also: tuple[str, ...] = ()  # words accepted besides the kind's values, as themselves

    @property
    def env(self) -> str:
        return "LLMTAP_" + self.name.upper()

    def parse(self, raw: str) -> Any:
        """Turn an environment variable's text into a value of this setting's kind."""
        raw = raw.strip()
        if raw.lower() in self.also:
            return raw.lower()
        if self.kind is bool:
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"{self.env}={raw!r}: expected one of 1/0, true/false, yes/no")
        if self.kind is dict:
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):
                value = None
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
    Setting(
        "redact_pii",
        False,
        "Redact personal data and secrets before they leave the process (needs llmtap[pii]);"
        " pseudonymize: each value becomes a stable token keyed by pii_secret.",
        bool,
        "sdk",
        also=("pseudonymize",),
    ),
    Setting(
        "pii_secret",
        None,
        "Key of redact_pii=pseudonymize: the same value, the same token, in every event made"
        " with this key. Stays in the SDK's process; never sent.",
        str,
        "sdk",
    ),
    Setting("chat_id", None, "Chat id for calls that give none.", str, "sdk"),
    Setting("attributes", None, "JSON object merged into every event's attributes.", dict, "sdk"),
    Setting("sample_rate", 1.0, "Fraction of calls recorded, from 0 to 1.", float, "sdk"),
    Setting(
        "stream_usage",
        True,
        "On streams that do not ask for usage, ask for it (stream_options.include_usage) and "
        "hide the extra usage chunk from the caller.",
        bool,
        "sdk",
    ),
    Setting(
        "estimate_usage",
        True,
        "When the provider reports no usage, count tokens locally (needs the llmtap[tokenizer] "
        "extra; marked estimated).",
        bool,
        "sdk",
    ),
    # -- SDK: how events are delivered ---------------------------------------------------
    Setting(
        "flush_timeout",
        2.0,
        "Seconds the process may spend delivering queued events at exit or close().",
        float,
        "sdk",
    ),
    Setting("batch_size", 100, "Events sent in one request at most (1 or more).", int, "sdk"),
    Setting(
        "flush_interval",
        0.5,
        "Seconds an event may wait in the queue for a batch to fill (0.01 or more).",
        float,
        "sdk",
    ),
    Setting(
        "max_queue",
        10_000,
        "Calls held in memory, waiting to be spooled, at most; past that new ones are dropped"
        " and counted.",
        int,
        "sdk",
    ),
    Setting(
        "spool_dir",
        None,
        "Folder of the disk spool, where batches wait until the server has them"
        " (default: llmtap/spool in the user's cache folder).",
        str,
        "sdk",
    ),
    Setting(
        "spool_max_bytes",
        512 * 1024 * 1024,
        "Largest size of the disk spool, in bytes; past it the oldest events are dropped and"
        " counted. 0 keeps undelivered events in memory only (at most max_queue).",
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
        "Store: a SQLite file path, or a postgresql:// URL (several servers on one database;"
        " needs the postgres extra).",
        str,
        "server",
    ),
    Setting(
        "read_db",
        None,
        "postgresql:// URL of a streaming replica of db that queries (events, stats,"
        " templates, exports) read from; writes and reads that must be current stay on db."
        " PostgreSQL only.",
        str,
        "server",
    ),
    Setting("host", "127.0.0.1", "Address the server binds to.", str, "server"),
    Setting(
        "admin_token",
        None,
        "Bootstrap credential: makes the dashboard's first user (16+ characters); needed "
        "to bind beyond loopback until a user exists.",
        str,
        "server",
    ),
    Setting("port", 7420, "Port the server listens on.", int, "server"),
    Setting(
        "workers",
        1,
        "Server processes sharing the port and the store (each SQLite writer waits its turn).",
        int,
        "server",
    ),
    Setting(
        "max_body_bytes",
        32 * 1024 * 1024,
        "Largest request body the server accepts, in bytes (413 past it).",
        int,
        "server",
    ),
    Setting(
        "redact_fields",
        None,
        'JSON object: project name (or "*" for all) to the event fields the server redacts '
        'personal data from on ingest, e.g. {"shop": ["request", "response"]} or {"*": "all"}.',
        dict,
        "server",
    ),
    Setting(
        "max_field_bytes",
        1024 * 1024,
        "Longest text the server stores in one field of an event, in bytes; longer text is cut"
        " to it and the field's path listed in the event's 'truncated'.",
        int,
        "server",
    ),
    Setting(
        "otlp_context_spans",
        True,
        "Keep OTLP spans that are no model call (tools, retrieval, agent steps) as their"
        " trace's context, shown in the chain view; 0 drops them.",
        bool,
        "server",
    ),
    Setting(
        "stats_attribute_values",
        1000,
        "Distinct values per attribute key kept in the stats aggregates; past it, stats on"
        " that key (or once one of its values is over 200 characters) are computed from the"
        " events (slower, still exact).",
        int,
        "server",
    ),
    # -- server: what a client may cost before it has said who it is ----------------------
    Setting(
        "max_header_bytes",
        64 * 1024,
        "Largest request line and headers the server reads, in bytes (431 past it).",
        int,
        "server",
    ),
    Setting(
        "header_timeout",
        10.0,
        "Seconds a client may take to send a request's line and headers (408 past it, and"
        " the connection is closed).",
        float,
        "server",
    ),
    Setting(
        "body_timeout",
        60.0,
        "Seconds a client may take to send a request's body once its headers are in (408"
        " past it, and the connection is closed).",
        float,
        "server",
    ),
    Setting(
        "max_connections",
        1000,
        "Connections (and requests) a server process holds at once; past it a request is"
        " answered 503 at once.",
        int,
        "server",
    ),
    # -- server: retention --------------------------------------------------------------------
    Setting(
        "retention_days",
        0,
        "Days raw events are kept (a project's own setting wins); 0: forever.",
        int,
        "server",
    ),
    Setting(
        "retention_keep_stats",
        True,
        "Stats outlive the raw events retention purges; 0: purged events leave the stats too.",
        bool,
        "server",
    ),
    Setting(
        "retention_interval",
        3600.0,
        "Seconds between retention purges (one server process purges at a time); 0: this"
        " server does not purge.",
        float,
        "server",
    ),
    # -- server: alerts and budgets ----------------------------------------------------------
    Setting(
        "alert_interval",
        60.0,
        "Seconds between evaluations of the alert rules and budgets (one server process"
        " evaluates at a time); 0: this server does not evaluate.",
        float,
        "server",
    ),
    Setting(
        "alert_delay",
        60.0,
        "Seconds after a minute ends before rules and budgets count it: a call is recorded"
        " when it ends and delivered in batches, so the newest minute is still arriving.",
        float,
        "server",
    ),
    Setting(
        "alert_allow_networks",
        "",
        "Networks a webhook or an SMTP server may be at besides public addresses,"
        " comma-separated (e.g. 10.0.0.0/8,127.0.0.0/8), or * for any; loopback and private"
        " hosts are refused otherwise.",
        str,
        "server",
    ),
    Setting(
        "alert_timeout",
        10.0,
        "Seconds a webhook or SMTP delivery waits for each connect, read or write.",
        float,
        "server",
    ),
    Setting(
        "alert_retry_delay",
        5.0,
        "Seconds before a failed notification is tried again (doubling, 4 attempts).",
        float,
        "server",
    ),
    Setting(
        "public_url",
        None,
        "The dashboard's address, for links in notifications; default: http://HOST:PORT.",
        str,
        "server",
    ),
    Setting(
        "provider_api_key",
        None,
        "Model provider key the dashboard's replays and test runs call with (through"
        " llmtap test and llmtap replay); read at start, never stored or shown. Unset: the"
        " pages show the command to run instead.",
        str,
        "server",
    ),
    Setting(
        "provider_base_url",
        None,
        "OpenAI-compatible address of that provider (default: OpenAI's).",
        str,
        "server",
    ),
    Setting(
        "max_form_bytes",
        16 * 1024,
        "Largest dashboard form (log in, settings) the server reads, in bytes (413 past it,"
        " before anything of it is parsed).",
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


def markdown_table() -> str:
    """Every setting as a Markdown table: what ``llmtap settings`` prints and the README shows
    (a test keeps the two the same)."""

    def shown(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "`1`" if value else "`0`"
        return f"`{value}`"

    lines = ["| setting | variable | default | where | what |", "|---|---|---|---|---|"]
    for s in _TABLE:
        lines.append(f"| {s.name} | `{s.env}` | {shown(s.default)} | {s.scope} | {s.help} |")
    return "\n".join(lines)
