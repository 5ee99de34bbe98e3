"""`tsa`: the command line of the time-stamping authority (click).

Every failure the operator can fix is one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ledger.errors import LedgerError
from tsa_server.audit_cli import audit_command
from tsa_server.cli_options import config_option
from tsa_server.config import Config, load_config, validate
from tsa_server.errors import TSAError
from tsa_server.evidence_cli import accounts, evidence, fees
from tsa_server.names_cli import names
from tsa_server.verify_cli import verify


def _load(path: str) -> Config:
    return load_config(path)


class Failure(click.ClickException):
    """An error the operator can fix: one line, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"tsa: {self.message}", err=True)


class _Group(click.Group):
    """Turns the server's own errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (TSAError, LedgerError) as exc:
            raise Failure(str(exc)) from None
        except sqlite3.Error as exc:
            raise Failure(f"ledger database error: {exc}") from None
        except OSError as exc:  # e.g. the port is taken or the address is not ours
            raise Failure(f"{exc.strerror or exc}") from None


@click.group(cls=_Group)
def cli() -> None:
    """RFC 3161 time-stamping authority with a durable evidence ledger."""


@cli.command()
@config_option
def init(config_path: str) -> None:
    """Create on first run the SoftHSM token, keys, development CA and TSA certificate."""
    from tsa_server.keyceremony import initialise

    report = initialise(_load(config_path))
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
    from tsa_server.app import create_app
    from tsa_server.services import build_services
    from tsa_server.web import serving

    config = _load(config_path)
    if host is not None or port is not None:
        server = dataclasses.replace(
            config.server, host=host or config.server.host, port=port or config.server.port
        )
        config = dataclasses.replace(config, server=server)
        validate(config)
    logging.basicConfig(
        level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if config.clock.accept_local_reference:
        logging.getLogger("tsa.clock").warning(
            "[clock] accept_local_reference is on: an NTP server serving its own local clock "
            "is trusted (development only)"
        )
    services = build_services(config, new_ledger=new_ledger)
    host, port = config.server.host, config.server.port
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    click.echo(f"TSA serving on http://{host}:{port}/  (CA file: {config.certificates.ca})")
    app = create_app(services)
    # Everything built so far lives as long as the server: keep it out of the cyclic
    # collector's full passes, whose pauses otherwise show in the latency tail.
    gc.collect()
    gc.freeze()
    try:
        serving.run(
            app,
            serving.Listener(
                host,
                port,
                config.server.max_connections,
                config.server.idle_timeout_s,
                serving.BodyLimits(
                    config.server.body_grace_s,
                    config.server.body_min_rate_bytes_s,
                    config.server.body_timeout_s,
                ),
            ),
        )
    finally:
        services.close()


@cli.group()
def keys() -> None:
    """Key ceremony: keys in the token, CSRs and certificate chains."""


@keys.command("generate")
@config_option
@click.option("--label", required=True, help="Label of the new key in the token.")
@click.option(
    "--type",
    "key_type",
    default="ec-p256",
    show_default=True,
    type=click.Choice(["ec-p256", "ec-p384", "rsa2048", "rsa3072", "rsa4096", "ed25519"]),
)
def keys_generate(config_path: str, label: str, key_type: str) -> None:
    """Generate a non-extractable key pair inside the token."""
    from tsa_server.services import token_location
    from tsa_server.signing.base import KeySpec
    from tsa_server.signing.pkcs11 import generate_key, open_session

    session = open_session(token_location(_load(config_path)), rw=True)
    try:
        generate_key(session, KeySpec(key_type), label)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        session.close()
    click.echo(f"generated {key_type} key {label!r} (sensitive, not extractable)")


@keys.command("csr")
@config_option
@click.option("--common-name", required=True, help="Subject CN of the TSA certificate.")
@click.option("--organization", default=None, help="Subject O.")
@click.option("--out", type=click.Path(dir_okay=False), default="-", help="Output file (PEM).")
def keys_csr(config_path: str, common_name: str, organization: str | None, out: str) -> None:
    """Write a CSR signed by the signing key, for a CA to issue the TSA certificate."""
    from tsa_server.keyceremony import write_csr

    pem_bytes = write_csr(_load(config_path), common_name, organization)
    if out == "-":
        click.echo(pem_bytes.decode(), nl=False)
    else:
        Path(out).write_bytes(pem_bytes)
        click.echo(f"wrote {out}")


@keys.command("import-chain")
@config_option
@click.argument("chain_file", type=click.Path(exists=True, dir_okay=False))
def keys_import_chain(config_path: str, chain_file: str) -> None:
    """Install a certificate chain (TSA certificate first) after checking it fits the key."""
    from tsa_server.keyceremony import import_chain

    count = import_chain(_load(config_path), Path(chain_file).read_bytes())
    click.echo(f"installed a chain of {count} certificate(s)")


@keys.command("dev-ca")
@config_option
@click.option("--force", is_flag=True, help="Replace an existing chain file.")
def keys_dev_ca(config_path: str, force: bool) -> None:
    """Make a development root CA (key in the token) and a TSA certificate from it."""
    from tsa_server.keyceremony import check_chain, ensure_key, make_dev_certificates
    from tsa_server.services import token_location
    from tsa_server.signing.base import KeySpec

    config = _load(config_path)
    if Path(config.certificates.chain).exists() and not force:
        raise click.ClickException(f"{config.certificates.chain} exists; use --force to replace it")
    location = token_location(config)
    ensure_key(location, config.certificates.ca_key_label, KeySpec.EC_P256, [])
    now = datetime.now(UTC)
    make_dev_certificates(config, location, now)
    check_chain(config, location, now)
    click.echo(f"development CA: {config.certificates.ca}; chain: {config.certificates.chain}")


cli.add_command(verify)
cli.add_command(accounts)
cli.add_command(evidence)
cli.add_command(fees)
cli.add_command(audit_command)
cli.add_command(names)


def main(argv: list[str] | None = None) -> int:
    # Whatever the server or a command creates (databases, blobs, checkpoints, keys'
    # metadata, their directories) is private to the service user.
    os.umask(0o077)
    try:
        code = cli.main(args=argv, prog_name="tsa", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
