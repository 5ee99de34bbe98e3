"""`tsa`: the command line of the time-stamping authority (click).

Every failure the operator can fix is one line on stderr and exit status 1, no traceback;
the convention (0, 1, 2 and JSON errors) is applied by tsa_server.cli.main
(ledger/cli_run.py).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import click

from ledger.errors import LedgerError
from tsa_server.cli.accounts import accounts
from tsa_server.cli.audit import audit_command
from tsa_server.cli.backup import backup_command, restore_command
from tsa_server.cli.db import db
from tsa_server.cli.evidence import evidence
from tsa_server.cli.fees import fees
from tsa_server.cli.incident import incident
from tsa_server.cli.keys import keys
from tsa_server.cli.names import names
from tsa_server.cli.options import config_option
from tsa_server.cli.verify import verify
from tsa_server.config import Config, load_config, validate
from tsa_server.errors import TSAError


def _load(path: str) -> Config:
    return load_config(path)


class OperatorError(click.ClickException):
    """An error the operator can fix: one line, exit status 1 (ledger/cli_run.py)."""


class _Group(click.Group):
    """Turns the server's own errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (TSAError, LedgerError) as exc:
            raise OperatorError(str(exc)) from None
        except sqlite3.Error as exc:
            raise OperatorError(f"ledger database error: {exc}") from None
        except OSError as exc:  # e.g. the port is taken or the address is not ours
            raise OperatorError(f"{exc.strerror or exc}") from None


@click.group(cls=_Group)
def cli() -> None:
    """RFC 3161 time-stamping authority with a durable evidence ledger."""


@cli.command()
@config_option
def init(config_path: str) -> None:
    """Create on first run the SoftHSM token, keys, development CA and TSA certificate."""
    from tsa_server.issuance.ceremony import initialise
    from tsa_server.wiring.databases import migrate_database

    report = initialise(_load(config_path), migrate_database=migrate_database)
    for line in report.created:
        click.echo(f"created {line}")
    if not report.created:
        click.echo("token, keys and certificates already in place")
    click.echo(f"CA certificate for clients: {report.ca_file}")


@cli.command()
@config_option
@click.option("--host", default=None, help="Override [server] host.")
@click.option("--port", default=None, type=int, help="Override [server] port.")
@click.option(
    "--new-ledger",
    is_flag=True,
    help="Accept a missing checkpoint directory (a new ledger, or a directory knowingly "
    "recreated); the rollback checks against every other record still apply.",
)
def serve(config_path: str, host: str | None, port: int | None, new_ledger: bool) -> None:
    """Serve RFC 3161 requests until interrupted."""
    from tsa_server.server import serve as run_server

    config = _load(config_path)
    if host is not None or port is not None:
        server = dataclasses.replace(
            config.server, host=host or config.server.host, port=port or config.server.port
        )
        config = dataclasses.replace(config, server=server)
        validate(config)
    run_server(config, new_ledger=new_ledger, say=click.echo)


cli.add_command(keys)
cli.add_command(db)
cli.add_command(verify)
cli.add_command(accounts)
cli.add_command(evidence)
cli.add_command(fees)
cli.add_command(audit_command)
cli.add_command(names)
cli.add_command(incident)
cli.add_command(backup_command)
cli.add_command(restore_command)
