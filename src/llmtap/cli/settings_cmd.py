"""``llmtap settings``: every setting, its variable, default and meaning."""

from __future__ import annotations

import click


@click.command("settings")
def settings() -> None:
    """Print every setting as a Markdown table (as in the README)."""
    from ..settings import markdown_table

    click.echo(markdown_table())
