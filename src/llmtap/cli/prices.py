"""``llmtap prices``: a project's own prices, and the models it has events of without one."""

from __future__ import annotations

import json

import click

from ._options import api_key_option, url_option
from ._query import api_for


@click.group()
def prices() -> None:
    """Price overrides and unpriced models."""


@prices.command("list")
@url_option
@api_key_option
@click.option("--json", "as_json", is_flag=True)
def list_(url: str, api_key: str | None, as_json: bool) -> None:
    """The project's price overrides, and models with events but no price."""
    answer = api_for(url, api_key).prices()
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo("price overrides (USD per million tokens):")
    for o in answer["overrides"]:
        click.echo(
            f"  {o['model']}  input {o['input_per_mtok']}  output {o['output_per_mtok']}"
            f"  cached {o['cached_per_mtok']}  reasoning {o['reasoning_per_mtok']}"
            f"  since {o['since'] or 'always'}"
        )
    if not answer["overrides"]:
        click.echo("  none")
    click.echo("models without a price (their cost is unknown, not zero):")
    for m in answer["unpriced_models"]:
        click.echo(f"  {m['model']}  {m['events']} events")
    if not answer["unpriced_models"]:
        click.echo("  none")


@prices.command("set")
@url_option
@api_key_option
@click.argument("model")
@click.option("--input", "input_per_mtok", type=float, required=True, help="USD per 1M tokens.")
@click.option("--output", "output_per_mtok", type=float, required=True, help="USD per 1M.")
@click.option("--cached", "cached_per_mtok", type=float, help="Cached input; default: --input.")
@click.option("--reasoning", "reasoning_per_mtok", type=float, help="Default: --output.")
@click.option("--since", metavar="TIME", help="In force from this ISO 8601 time on.")
def set_(url: str, api_key: str | None, model: str, since: str | None, **prices: float) -> None:
    """Price MODEL for this project; its stored events are priced again."""
    answer = api_for(url, api_key).set_price(model, since=since, **prices)
    click.echo(f"{model}: price set; {answer['repriced_events']} stored events priced again")


@prices.command("unset")
@url_option
@api_key_option
@click.argument("model")
@click.option("--since", metavar="TIME")
def unset(url: str, api_key: str | None, model: str, since: str | None) -> None:
    """Remove a price override of MODEL."""
    answer = api_for(url, api_key).delete_price(model, since)
    click.echo(f"{model}: override removed; {answer['repriced_events']} events priced again")
