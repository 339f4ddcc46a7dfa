"""``llmtap alerts``: rules, budgets and channels through the HTTP API (an admin key changes
them, a read key lists them)::

    llmtap alerts list
    llmtap alerts create rule.json          # a rule, a budget ("kind": "budget") or a channel
    llmtap alerts export -o alerts.json     # rules and budgets, as one document
    llmtap alerts import alerts.json
    llmtap alerts test "errors jump"        # a test notification to its channels, now
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._options import api_key_option, url_option
from ._output import private_output
from ._query import api_errors_reported, api_for


@click.group()
def alerts() -> None:
    """Alert rules, budgets and notification channels."""


def _read_json(path: str) -> Any:
    try:
        with click.open_file(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from None
    except RecursionError:
        raise click.BadParameter(f"{path}: JSON nested too deeply") from None


def _value(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


@alerts.command("list")
@url_option
@api_key_option
@click.option("--json", "as_json", is_flag=True)
@api_errors_reported
def list_(url: str, api_key: str | None, as_json: bool) -> None:
    """Rules and budgets with their state, and the channels."""
    answer = api_for(url, api_key).alerts()
    if as_json:
        click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    for rule in answer["rules"]:
        cmp = f" ({rule['compare']}, %)" if rule.get("compare") else ""
        click.echo(
            f"{rule['state']:9} rule    {rule['name']}: {rule['measure']} {rule['op']}"
            f" {rule['threshold']}{cmp} over {rule['window']}s"
        )
        for g in rule["groups"]:
            if g["group"]:
                click.echo(f"            {g['state']:9} {g['group']}  value {_value(g['value'])}")
    for budget in answer["budgets"]:
        spent = max((g["value"] or 0 for g in budget["groups"]), default=0)
        click.echo(
            f"{budget['state']:9} budget  {budget['name']}: ${_value(spent)} of"
            f" ${budget['limit_usd']} per {budget['period']}"
        )
    for channel in answer["channels"]:
        where = channel.get("url") or ", ".join(channel.get("to", []))
        click.echo(f"channel   {channel['kind']:7} {channel['name']}: {where}")
    if not (answer["rules"] or answer["budgets"] or answer["channels"]):
        click.echo("no rules, budgets or channels yet: llmtap alerts create FILE.json")


@alerts.command()
@url_option
@api_key_option
@click.argument("file")
@api_errors_reported
def create(url: str, api_key: str | None, file: str) -> None:
    """Create the rule, budget or channel in FILE (JSON; - for standard input)."""
    item = _read_json(file)
    if not isinstance(item, dict):
        raise click.BadParameter(f"{file}: expected a JSON object")
    api_for(url, api_key).create_alert(item)
    click.echo(f"created {item.get('kind', 'rule')} {item.get('name')!r}")


@alerts.command("export")
@url_option
@api_key_option
@click.option("-o", "--output", default="-", help="File to write; default: standard output.")
@api_errors_reported
def export_(url: str, api_key: str | None, output: str) -> None:
    """Rules and budgets as one JSON document (channels hold secrets: not exported)."""
    document = api_for(url, api_key).export_alerts()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        click.echo(text, nl=False)
        return
    with private_output(Path(output)) as part:  # as every file a command writes: its owner's
        part.write_text(text, encoding="utf-8")


@alerts.command("import")
@url_option
@api_key_option
@click.argument("file")
@api_errors_reported
def import_(url: str, api_key: str | None, file: str) -> None:
    """Store the rules and budgets of an exported document (same names are replaced)."""
    answer = api_for(url, api_key).import_alerts(_read_json(file))
    counts = answer["imported"]
    click.echo(f"imported {counts['rules']} rule(s) and {counts['budgets']} budget(s)")


@alerts.command("test")
@url_option
@api_key_option
@click.argument("name")
@click.option("--budget", is_flag=True, help="NAME is a budget, not a rule.")
@api_errors_reported
def test_(url: str, api_key: str | None, name: str, budget: bool) -> None:
    """Send a test notification of rule NAME to its channels now."""
    answer = api_for(url, api_key).test_alert(name, "budget" if budget else "rule")
    for r in answer["results"]:
        click.echo(f"{'sent' if r['ok'] else 'FAILED':6} {r['channel']}: {r['said']}")
    if not answer["ok"]:
        raise SystemExit(1)
