"""``llmtap events``: the newest events, through the server's query API."""

from __future__ import annotations

import json
from typing import Any

import click

from ._options import api_key_option, url_option
from ._output import table


def _fetch(url: str, api_key: str | None, params: dict[str, Any]) -> dict[str, Any]:
    import httpx2

    if not api_key:
        raise click.UsageError("an API key is needed: --api-key or LLMTAP_API_KEY")
    try:
        response = httpx2.get(
            url.rstrip("/") + "/api/v1/events",
            params=params,
            headers={"authorization": f"Bearer {api_key}"},
            timeout=30,
        )
    except httpx2.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    body = response.json()
    if response.status_code >= 400:
        raise click.ClickException(body.get("error", response.text))
    return body  # type: ignore[no-any-return]


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
@click.option("--model")
@click.option("--template", "prompt_template_name", help="Prompt template name.")
@click.option("--status", type=click.Choice(["ok", "error", "cancelled"]))
@click.option("--environment")
@click.option("--chat-id")
@click.option("--chain-id")
@click.option("--from", "from_", metavar="TIME", help="ISO 8601 time, inclusive.")
@click.option("--to", metavar="TIME", help="ISO 8601 time, exclusive.")
@click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one event per line.")
def events(
    url: str,
    api_key: str | None,
    from_: str | None,
    attributes: tuple[str, ...],
    as_json: bool,
    **filters: Any,
) -> None:
    """List events, newest first."""
    params = {k: v for k, v in filters.items() if v is not None}
    if from_:
        params["from"] = from_
    for pair in attributes:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--attribute")
        params[f"attributes.{key}"] = value
    found = _fetch(url, api_key, params)["events"]
    if as_json:
        for event in found:
            click.echo(json.dumps(event, ensure_ascii=False))
        return
    header = ["started (UTC)", "model", "template", "status", "ms", "tokens", "output"]
    click.echo(table([_row(e) for e in found], header))
