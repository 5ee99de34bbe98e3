"""`tsa db`: the [database] PostgreSQL schema (the SQLite files need no command)."""

from __future__ import annotations

import click

from tsa_server.cli.options import config_option
from tsa_server.config import load_config


@click.group("db")
def db() -> None:
    """The PostgreSQL database of [database] url."""


@db.command("upgrade")
@config_option
def upgrade(config_path: str) -> None:
    """Apply the schema migrations the database lacks (idempotent; safe while other
    nodes run: one migrator at a time). The server itself never migrates."""
    from ledger.store.postgres import SCHEMA_VERSION
    from tsa_server.wiring.databases import migrate_database

    url = load_config(config_path).database.url
    if not url:
        raise click.ClickException("[database] url is empty: the SQLite files need no upgrade")
    applied = migrate_database(url)
    click.echo(f"schema version {SCHEMA_VERSION} ({applied} migration(s) applied)")
