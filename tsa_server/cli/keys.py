"""`tsa keys`: the key ceremony: keys in the token, CSRs, certificate chains and the
development CA."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from tsa_server.cli.options import config_option
from tsa_server.config import load_config


@click.group()
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
    from tsa_server.signing.base import KeySpec
    from tsa_server.signing.pkcs11 import generate_key, open_session
    from tsa_server.wiring import token_location

    session = open_session(token_location(load_config(config_path)), rw=True)
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
    from tsa_server.issuance.ceremony import write_csr

    pem_bytes = write_csr(load_config(config_path), common_name, organization)
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
    from tsa_server.issuance.ceremony import import_chain

    count = import_chain(load_config(config_path), Path(chain_file).read_bytes())
    click.echo(f"installed a chain of {count} certificate(s)")


@keys.command("dev-ca")
@config_option
@click.option("--force", is_flag=True, help="Replace an existing chain file.")
def keys_dev_ca(config_path: str, force: bool) -> None:
    """Make a development root CA (key in the token) and a TSA certificate from it."""
    from tsa_server.issuance.ceremony import check_chain, ensure_key, make_dev_certificates
    from tsa_server.signing.base import KeySpec
    from tsa_server.wiring import token_location

    config = load_config(config_path)
    if Path(config.certificates.chain).exists() and not force:
        raise click.ClickException(f"{config.certificates.chain} exists; use --force to replace it")
    location = token_location(config)
    ensure_key(location, config.certificates.ca_key_label, KeySpec.EC_P256, [])
    now = datetime.now(UTC)
    make_dev_certificates(config, location, now)
    check_chain(config, location, now)
    click.echo(f"development CA: {config.certificates.ca}; chain: {config.certificates.chain}")
