"""The ``llmtap`` command group."""

from __future__ import annotations

from typing import Any

import click

from .._version import __version__
from .alerts import alerts
from .boards import boards
from .demo import demo
from .events import events
from .export import export
from .keys import keys
from .migrate import migrate_store
from .prices import prices
from .replay import replay
from .serve import serve
from .settings_cmd import settings
from .stats import stats
from .testsets import test, testsets
from .users import users


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as e:
            from ..store import StoreUnavailable

            if isinstance(e, StoreUnavailable):  # PostgreSQL down: one line, exit 1
                raise click.ClickException(str(e)) from None
            raise


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmtap")
def main() -> None:
    """llmtap: a self-hosted monitor for LLM calls."""


main.add_command(serve)
main.add_command(keys)
main.add_command(users)
main.add_command(events)
main.add_command(stats)
main.add_command(export)
main.add_command(migrate_store)
main.add_command(prices)
main.add_command(demo)
main.add_command(settings)
main.add_command(alerts)
main.add_command(boards)
main.add_command(testsets)
main.add_command(test)
main.add_command(replay)
