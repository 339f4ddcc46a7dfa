"""Options several commands share, with defaults from the settings table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..settings import SETTINGS


def setting_option(*decls: str, name: str, **kwargs: Any) -> Callable[[Any], Any]:
    """A click option for setting ``name``: same default, help and environment variable."""
    setting = SETTINGS[name]
    return click.option(
        *decls,
        name,
        default=setting.default,
        envvar=setting.env,
        show_default=True,
        show_envvar=True,
        help=setting.help,
        **kwargs,
    )


db_option = setting_option("--db", name="db", metavar="PATH_OR_URL")
url_option = setting_option("--url", name="url")
api_key_option = setting_option("--api-key", name="api_key")
