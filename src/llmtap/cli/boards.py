"""``llmtap boards export|import``: boards as JSON files, to keep in git, through the server's
API (``llmtap.Api``): the key decides the project.

    llmtap boards export PROJECT [BOARD] > boards.json    # every board, or one (id or name)
    llmtap boards import boards.json                      # each checked first, then created
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..api import Api
from ._options import api_key_option, url_option
from ._query import api_errors_reported, api_for

FORMAT = "llmtap-boards/1"


@click.group()
def boards() -> None:
    """Boards as JSON files."""


def _pick(api: Api, project: str, board: str | None) -> list[dict[str, Any]]:
    # The server checks the name against the key's project (a 404 when they differ).
    listed = api.boards(project)["boards"]
    if board is not None:
        listed = [b for b in listed if board in (b["id"], b["name"])]
        if not listed:
            raise click.ClickException(f"no board {board!r} (an id or a name)")
    return [api.board(b["id"], project) for b in listed]


@boards.command("export")
@url_option
@api_key_option
@click.argument("project")
@click.argument("board", required=False)
@api_errors_reported
def export_boards(url: str, api_key: str | None, project: str, board: str | None) -> None:
    """Print the boards of PROJECT (the key's project), or one BOARD, as JSON."""
    api = api_for(url, api_key)
    out = {
        "format": FORMAT,
        "project": project,
        "boards": [
            {"id": b["id"], "name": b["name"], "is_template": b["is_template"], "spec": b["spec"]}
            for b in _pick(api, project, board)
        ],
    }
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _read(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not JSON: {exc}") from None
    except RecursionError:
        raise click.ClickException(f"{path}: not JSON: nested too deeply") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise click.ClickException(
            f"{path}: not a boards file (made by `llmtap boards export`: format {FORMAT!r})"
        )
    listed = data.get("boards")
    if not isinstance(listed, list) or not all(isinstance(b, dict) for b in listed):
        raise click.ClickException(f"{path}: 'boards' must be a list of boards")
    return [{k: v for k, v in b.items() if k != "id"} for b in listed]


@boards.command("import")
@url_option
@api_key_option
@click.argument("file", type=click.Path(dir_okay=False))
@api_errors_reported
def import_boards(url: str, api_key: str | None, file: str) -> None:
    """Create the boards of FILE in the key's project. Every board is checked before any is
    created: a bad file creates nothing."""
    from ..api import ApiError

    listed = _read(file)
    api = api_for(url, api_key)
    for i, board in enumerate(listed):
        try:
            api.check_board(board)
        except ApiError as exc:
            name = board.get("name")
            raise click.ClickException(f"{file}: board {i + 1} ({name!r}): {exc.message}") from None
    for board in listed:
        made = api.create_board(board)
        click.echo(f"{made['id']}\t{made['name']}")
