"""``llmtap events``: the newest events, through the server's query API."""

from __future__ import annotations

import json
from typing import Any

import click

from ._options import api_key_option, url_option
from ._output import table
from ._query import api_errors_reported, api_for, event_filters, filter_options


def _row(event: dict[str, Any]) -> list[str]:
    usage = event.get("usage") or {}
    latency = event.get("latency_ms")
    text = event.get("output_text") or (event.get("error") or {}).get("message") or ""
    return [
        event["started_at"][:19].replace("T", " "),
        event.get("model") or "",
        event.get("prompt_template_name") or "",
        event["status"],
        f"{latency:.0f}" if latency is not None else "",
        str(usage.get("total_tokens") or ""),
        " ".join(text.split())[:40],
    ]


@click.command()
@url_option
@api_key_option
@filter_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one event per line.")
@api_errors_reported
def events(url: str, api_key: str | None, limit: int, as_json: bool, **kw: Any) -> None:
    """List events, newest first."""
    api = api_for(url, api_key)
    found = next(api.events(page_size=limit, **event_filters(kw)).pages())
    if as_json:
        for event in found:
            click.echo(json.dumps(event, ensure_ascii=False))
        return
    header = ["started (UTC)", "model", "template", "status", "ms", "tokens", "output"]
    click.echo(table([_row(e) for e in found], header))
