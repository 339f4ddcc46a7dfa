"""``llmtap stats``: counts, errors, tokens, cost, latency and rating per group, through the
server's query API."""

from __future__ import annotations

import json
from typing import Any

import click

from ._options import api_key_option, url_option
from ._output import table
from ._query import api_errors_reported, api_for, event_filters, filter_options


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@click.command()
@url_option
@api_key_option
@click.option(
    "--group-by",
    "group_by",
    multiple=True,
    metavar="FIELD",
    help="model, prompt_template_name, template_revision, environment, status, "
    "attributes.KEY, minute, hour, day or week; repeat or separate with commas.",
)
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
@api_errors_reported
def stats(
    url: str, api_key: str | None, group_by: tuple[str, ...], as_json: bool, **kw: Any
) -> None:
    """Stats of the events the filters select, per group."""
    api = api_for(url, api_key)
    fields = [f for g in group_by for f in g.split(",") if f]
    answer = api.stats(group_by=fields, **event_filters(kw))
    if as_json:
        click.echo(json.dumps(answer.raw, indent=2, ensure_ascii=False))
        return
    header = [*fields, "count", "errors", "in tok", "out tok", "cost $", "p50 ms", "p90 ms"]
    header += ["p99 ms", "ttft p50", "rating"]
    rows = []
    for g in answer:
        cost = _fmt(g["cost_usd"], 4)
        if g["unpriced_events"]:
            cost += f" (+{g['unpriced_events']} unpriced)"
        lat, ttft = g["latency_ms"], g["ttft_ms"]
        rows.append(
            [
                *(_fmt(g["key"][f]) for f in fields),
                str(g["count"]),
                f"{g['errors']} ({g['error_rate']:.1%})" if g["count"] else "0",
                str(g["input_tokens"]),
                str(g["output_tokens"]),
                cost,
                _fmt(lat["p50"]),
                _fmt(lat["p90"]),
                _fmt(lat["p99"]),
                _fmt(ttft["p50"]),
                _fmt(g["avg_rating"], 2),
            ]
        )
    click.echo(table(rows, header))
