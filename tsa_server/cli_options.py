"""Options shared by the `tsa` command groups (kept apart from cli.py, which imports
the groups)."""

from __future__ import annotations

import click

from tsa_server.config import DEFAULT_CONFIG

config_option = click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Configuration file.",
)
