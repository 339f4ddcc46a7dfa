"""The ``llmtap`` command. Each command group lives in its own module."""

from __future__ import annotations

try:
    from .main import main
except ImportError as exc:  # the SDK alone does not bring the CLI's dependencies
    if exc.name != "click":
        raise
    import sys

    def main() -> None:  # type: ignore[misc]
        sys.exit("llmtap: the command line needs the server extra: pip install 'llmtap[server]'")


__all__ = ["main"]
