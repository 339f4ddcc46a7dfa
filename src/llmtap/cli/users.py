"""``llmtap users``: dashboard users, managed on the store directly (no server needed): the
way back in when every password is lost."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..store import ROLES
from ._options import db_option


@click.group()
def users() -> None:
    """Manage dashboard users."""


def _password_from_stdin() -> str:
    from ..server.dashboard.auth import MIN_PASSWORD

    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise click.UsageError(f"the password needs at least {MIN_PASSWORD} characters")
    return password


_password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    required=True,
    help="Read the password from the first line of standard input (never from the command "
    "line, where other users of the machine could see it).",
)


@users.command("create")
@click.argument("name")
@_password_stdin
@click.option("--owner", is_flag=True, help="Sees and manages every project and user.")
@click.option("--project", help="A project the user gets a role in (one that exists).")
@click.option("--role", type=click.Choice(ROLES), help="Their role in --project  [default: viewer]")
@db_option
def create(
    name: str, password_stdin: bool, owner: bool, project: str | None, role: str | None, db: str
) -> None:
    """Create a user who logs in to the dashboard with NAME and the password."""
    from ..server.dashboard.auth import account_problem, hash_password
    from ..store import NameTaken, open_store

    if role is not None and project is None:  # a role is in a project: it had been dropped
        raise click.UsageError("--role needs --project: the project the role is in")
    password = _password_from_stdin()
    problem = account_problem(name.strip(), password)
    if problem:
        raise click.UsageError(problem)
    store = open_store(db)
    try:
        pid = _existing_project(store, project) if project else None
        try:
            store.create_user(name.strip(), hash_password(password), owner, pid, role or "viewer")
        except NameTaken as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(f"created {name.strip()}" + (" (owner)" if owner else ""), err=True)


def _existing_project(store: Any, name: str) -> int:
    """The id of the project ``name``; a usage error naming those there are when there is
    none (a typo had quietly made a project of its own)."""
    projects = {p["name"]: p["id"] for p in store.list_projects()}
    if name not in projects:
        known = ", ".join(sorted(projects)) or "none yet"
        raise click.UsageError(
            f"no project {name!r} (there are: {known}); a key makes one: "
            f"llmtap keys create --project {name}"
        )
    return int(projects[name])


@users.command("list")
@db_option
def list_(db: str) -> None:
    """Every user, with their roles."""
    from ..store import open_store

    store = open_store(db)
    try:
        for user in store.list_users():
            roles = ",".join(f"{p}:{r}" for p, r in user["roles"].items())
            owner = "owner" if user["is_owner"] else "-"
            click.echo(f"{user['name']}\t{owner}\t{roles or '-'}\t{user['created_at']}")
    finally:
        store.close()


@users.command("reset-password")
@click.argument("name")
@_password_stdin
@db_option
def reset_password(name: str, password_stdin: bool, db: str) -> None:
    """Give NAME a new password; every session of theirs ends."""
    import time

    from ..server.dashboard.auth import hash_password
    from ..store import open_store

    password = _password_from_stdin()
    store = open_store(db)
    try:
        user = store.user_by_name(name)
        if user is None:
            raise click.ClickException(f"no user {name!r}")
        store.set_password(user["id"], hash_password(password), time.time_ns() // 1000)
    finally:
        store.close()
    click.echo(f"new password set for {user['name']}; their sessions ended", err=True)
