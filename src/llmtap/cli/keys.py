"""``llmtap keys``: API keys, made on the store directly (no server needed)."""

from __future__ import annotations

import click

from ..server.auth import SCOPES
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
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    default=("ingest",),
    show_default=True,
    help="What the key may do (repeat for several): ingest sends events and feedback, read "
    "queries the project, admin changes it (prices, deletes) and reads.",
)
@click.option(
    "--env-only", is_flag=True, help="Reads see only the events of the key's own environment."
)
@db_option
def create(
    project: str, environment: str, scopes: tuple[str, ...], env_only: bool, db: str
) -> None:
    """Create a key and print it, alone, on stdout. Only its hash is stored: keep it."""
    from ..server.auth import create_key, names_problem
    from ..store import open_store

    problem = names_problem(project, environment)  # before the store is opened (or made)
    if problem:
        raise click.UsageError(problem)
    store = open_store(db)
    try:
        click.echo(create_key(store, project, environment, scopes, env_only))
    finally:
        store.close()


@keys.command("list")
@click.option("--project", help="Only this project's keys.")
@db_option
def list_(project: str | None, db: str) -> None:
    """The keys of every project (or one): prefix, environment, scopes, state."""
    from ..store import open_store

    store = open_store(db)
    try:
        for p in store.list_projects():
            if project is not None and p["name"] != project:
                continue
            for k in store.list_keys(p["id"]):
                scopes = ",".join(k["scopes"]) + (" (own env only)" if k["env_only"] else "")
                state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
                click.echo(f"{p['name']}\t{k['environment']}\t{k['prefix']}…\t{scopes}\t{state}")
    finally:
        store.close()


@keys.command("revoke")
@click.argument("prefix")
@click.option("--project", help="The key's project (when several have a key so named).")
@db_option
def revoke(prefix: str, project: str | None, db: str) -> None:
    """Revoke the active key that starts with PREFIX (as `llmtap keys list` shows it): running
    servers refuse it within a second."""
    from ..store import open_store

    wanted = prefix.strip().rstrip("…")
    if len(wanted) < 6:
        raise click.UsageError("give at least the key's first 6 characters (as `keys list`)")
    store = open_store(db)
    try:
        found = [
            (p, k)
            for p in store.list_projects()
            if project is None or p["name"] == project
            for k in store.list_keys(p["id"])
            if not k["revoked_at"]
            and (k["prefix"].startswith(wanted) or wanted.startswith(k["prefix"]))
        ]
        if not found:
            raise click.ClickException(f"no active key starts with {wanted!r}")
        if len(found) > 1:
            named = ", ".join(f"{p['name']}/{k['environment']}" for p, k in found)
            raise click.ClickException(
                f"{len(found)} active keys start with {wanted!r} ({named}): name --project, "
                "or give more of the key"
            )
        ((p, k),) = found
        store.revoke_key(p["id"], k["id"])
        click.echo(f"revoked {k['prefix']}… of {p['name']} ({k['environment']})", err=True)
    finally:
        store.close()


@keys.command("admin-token")
@db_option
def admin_token(db: str) -> None:
    """Make a new dashboard admin token and print it, alone (the old one stops working). Only
    its hash is stored. It creates the first dashboard user; once one exists it opens nothing,
    and this command refuses: use `llmtap users reset-password` or `llmtap users create`."""
    import secrets

    from ..server.dashboard import ensure_admin_token
    from ..store import open_store

    store = open_store(db)
    try:
        if store.count_users():
            raise click.ClickException(
                "dashboard users exist, and the admin token no longer logs in: use `llmtap "
                "users reset-password NAME --password-stdin` (or `llmtap users create NAME "
                "--owner --password-stdin`)"
            )
        token = secrets.token_urlsafe(24)
        ensure_admin_token(store, token)
        click.echo(token)
    finally:
        store.close()
