"""``llmtap prices``: a project's own prices, and the models it has events of without one."""

from __future__ import annotations

import json

import click

from ..wire import finite_number
from ._options import api_key_option, url_option
from ._output import table
from ._query import api_errors_reported, api_for


@click.group()
def prices() -> None:
    """Price overrides and unpriced models."""


@prices.command("list")
@url_option
@api_key_option
@click.option("--json", "as_json", is_flag=True)
@api_errors_reported
def list_(url: str, api_key: str | None, as_json: bool) -> None:
    """The project's price overrides, and models with events but no price."""
    answer = api_for(url, api_key).prices()
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    # Model names are what any ingest key sent: shown through ``table``, which shows a control
    # character (a terminal's escape sequence) as "?".
    click.echo("price overrides (USD per million tokens):")
    if answer["overrides"]:
        overrides = [
            [o["model"], *(str(o[f"{k}_per_mtok"]) for k in _KINDS), o["since"] or "always"]
            for o in answer["overrides"]
        ]
        click.echo(_indented(table(overrides, ["model", *_KINDS, "since"])))
    else:
        click.echo("  none")
    click.echo("models without a price (their cost is unknown, not zero):")
    if answer["unpriced_models"]:
        unpriced = [[m["model"], str(m["events"])] for m in answer["unpriced_models"]]
        click.echo(_indented(table(unpriced, ["model", "events"])))
    else:
        click.echo("  none")


_KINDS = ("input", "output", "cached", "reasoning")


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _price(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (finite_number(value) and value >= 0):
        raise click.BadParameter("a price is a number of dollars from 0 up")
    return value


@prices.command("set")
@url_option
@api_key_option
@click.argument("model")
@click.option(
    "--input", "input_per_mtok", type=float, required=True, callback=_price,
    help="USD per 1M tokens.",
)  # fmt: skip
@click.option(
    "--output", "output_per_mtok", type=float, required=True, callback=_price, help="USD per 1M."
)
@click.option(
    "--cached", "cached_per_mtok", type=float, callback=_price,
    help="Cached input; default: --input.",
)  # fmt: skip
@click.option(
    "--reasoning", "reasoning_per_mtok", type=float, callback=_price, help="Default: --output."
)
@click.option("--since", metavar="TIME", help="In force from this ISO 8601 time on.")
@api_errors_reported
def set_(url: str, api_key: str | None, model: str, since: str | None, **prices: float) -> None:
    """Price MODEL for this project; its stored events are priced again."""
    answer = api_for(url, api_key).set_price(model, since=since, **prices)
    click.echo(f"{model}: price set; {answer['repriced_events']} stored events priced again")


@prices.command("unset")
@url_option
@api_key_option
@click.argument("model")
@click.option("--since", metavar="TIME")
@api_errors_reported
def unset(url: str, api_key: str | None, model: str, since: str | None) -> None:
    """Remove a price override of MODEL."""
    answer = api_for(url, api_key).delete_price(model, since)
    click.echo(f"{model}: override removed; {answer['repriced_events']} events priced again")
