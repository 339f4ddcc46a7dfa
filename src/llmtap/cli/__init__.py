"""The ``llmtap`` command. Each command group lives in its own module."""

from __future__ import annotations

try:
    import click
except ImportError:  # the SDK alone does not bring the CLI's dependencies
    import sys

    def main() -> None:
        sys.exit("llmtap: the command line needs the server extra: pip install 'llmtap[server]'")

else:
    from .._version import __version__
    from .events import events
    from .keys import keys
    from .serve import serve

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="llmtap")
    def main() -> None:
        """llmtap: a self-hosted monitor for LLM calls."""

    main.add_command(serve)
    main.add_command(keys)
    main.add_command(events)

__all__ = ["main"]
