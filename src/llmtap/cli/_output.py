"""How the commands print and write: plain aligned tables, files their owner alone reads."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

# Control characters: what a stored text (a model name, a template's) must not send to the
# terminal (escape sequences retitle it, hide lines, or write the clipboard).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def private_file(path: Path) -> None:
    """Make ``path`` (or empty it) readable and writable by its owner only, before anything
    is written to it: an export or a report holds prompts and answers. A path that cannot be
    written (no such folder, a folder, no permission) is a usage error naming it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # a file that was there keeps its mode otherwise
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    """The UTF-8 text of the file at ``path``; a usage error naming it when it cannot be read
    or is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{path}: not UTF-8 text") from None


def table(rows: list[list[str]], header: list[str]) -> str:
    """``rows`` under ``header``, columns padded to line up, a rule under the header; control
    characters shown as ``?``."""
    rows = [[_CONTROL.sub("?", cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
