"""``llmtap events``: the newest events, and ``llmtap events delete``, through the server's
API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ..api import Api, ApiError
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


@click.group(invoke_without_command=True)
@click.pass_context
@url_option
@api_key_option
@filter_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one event per line.")
@api_errors_reported
def events(
    ctx: click.Context, url: str, api_key: str | None, limit: int, as_json: bool, **kw: Any
) -> None:
    """List events, newest first (`llmtap events delete` deletes some)."""
    if ctx.invoked_subcommand is not None:
        return
    api = api_for(url, api_key)
    found = next(api.events(page_size=limit, **event_filters(kw)).pages())
    if as_json:
        for event in found:
            click.echo(json.dumps(event, ensure_ascii=False))
        return
    header = ["started (UTC)", "model", "template", "status", "ms", "tokens", "output"]
    click.echo(table([_row(e) for e in found], header))


@events.command()
@url_option
@api_key_option
@click.option("--id", "ids", multiple=True, metavar="ID", help="An event's id; repeatable.")
@filter_options
@click.option("--all", "everything", is_flag=True, help="No filter: every event of the project.")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking first.")
@api_errors_reported
def delete(
    url: str,
    api_key: str | None,
    ids: tuple[str, ...],
    everything: bool,
    yes: bool,
    **kw: Any,
) -> None:
    """Delete events (by --id, or those the filters select) with their feedback, and take them
    out of the stats. Needs an admin key. Shows how many first and asks, unless --yes."""
    api = api_for(url, api_key)
    filters = event_filters(kw)
    if ids and (filters or everything):
        raise click.UsageError("--id deletes those events: give it without filters or --all")
    if not (ids or filters or everything):
        raise click.UsageError("give --id, a filter, or --all (every event of the project)")
    if not yes:
        count = sum(_found(i, api.event) for i in ids) if ids else _count(api, filters)
        if not count:
            click.echo("No event matches: nothing to delete.")
            return
        click.confirm(
            f"Delete {count} event(s) and their feedback? This cannot be undone.", abort=True
        )
    if ids:
        deleted = sum(_found(i, api.delete_event) for i in ids)
    else:
        deleted = api.delete_events(all=everything, **filters)["deleted"]
    click.echo(f"{deleted} event(s) deleted")


def _count(api: Api, filters: dict[str, Any]) -> int:
    return sum(group["count"] for group in api.stats(**filters))


def _found(event_id: str, act: Callable[[str], Any]) -> bool:
    """Whether ``act`` (reading or deleting the event) found it; a 404 is said, not raised."""
    try:
        act(event_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        click.echo(f"no event {event_id!r}", err=True)
        return False
    return True
