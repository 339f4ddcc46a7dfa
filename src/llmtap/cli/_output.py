"""How the commands print and write: plain aligned tables, files their owner alone reads."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

# Control characters: what a stored text (a model name, a template's) must not send to the
# terminal (escape sequences retitle it, hide lines, or write the clipboard).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def writable(path: Path) -> None:
    """A usage error naming ``path`` when a command could not write it (no such folder, a
    folder, no permission): checked before the work whose result it will hold."""
    _part(path).unlink()


def _part(path: Path) -> Path:
    """An empty file beside ``path``, its owner's alone, for its new content."""
    if path.is_dir():
        raise click.ClickException(f"cannot write {path}: Is a directory")
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    return part


@contextmanager
def private_output(path: Path) -> Iterator[Path]:
    """A file readable and writable by its owner alone (an export or a report holds prompts
    and answers) to write ``path``'s new content into: made before any work, so a path that
    cannot be written is a usage error naming it at once; it takes ``path``'s place when the
    block ends, and is removed if the block fails, so a failed command leaves what ``path``
    held as it was."""
    part = _part(path)
    try:
        yield part
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise


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
