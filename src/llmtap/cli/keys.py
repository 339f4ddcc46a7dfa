"""``llmtap keys``: API keys, made on the store directly (no server needed)."""

from __future__ import annotations

import click

from ._options import db_option


@click.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--project", required=True, help="Project the key writes into and reads.")
@click.option(
    "--env",
    "environment",
    default="dev",
    show_default=True,
    help="Environment its events are filed under.",
)
@db_option
def create(project: str, environment: str, db: str) -> None:
    """Create a key and print it, alone, on stdout. Only its hash is stored: keep it."""
    from ..server.auth import create_key
    from ..store import open_store

    store = open_store(db)
    try:
        click.echo(create_key(store, project, environment))
    finally:
        store.close()


@keys.command("admin-token")
@db_option
def admin_token(db: str) -> None:
    """Make a new dashboard admin token and print it, alone (the old one stops working, and so
    do sessions logged in with it). Only its hash is stored."""
    import secrets

    from ..server.dashboard import ensure_admin_token
    from ..store import open_store

    store = open_store(db)
    try:
        token = secrets.token_urlsafe(24)
        ensure_admin_token(store, token)
        click.echo(token)
    finally:
        store.close()
