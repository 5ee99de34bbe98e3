"""`tsa keys`: the key ceremony: keys in the token, CSRs, certificate chains and the
development CA; and the rollover to a new key (import its chain, schedule its
activation, list the schedule). Every step leaves an event for the operations log
(issuance/ops_inbox.py); the running server records `key_activated` itself."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from tsa_server.cli.options import config_option
from tsa_server.config import Config, load_config


def _post(config: Config, kind: str, **details: Any) -> None:
    """Leave the step's event for the server's operations log."""
    from tsa_server.issuance import ops_inbox

    ops_inbox.post(config.ledger.ops_inbox_dir, kind, **details)


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
    from tsa_server.issuance.rollover import key_public_info
    from tsa_server.signing.base import KeySpec
    from tsa_server.signing.pkcs11 import generate_key, open_session
    from tsa_server.signing.schedule import check_label
    from tsa_server.wiring import token_location

    config = load_config(config_path)
    check_label(label)
    session = open_session(token_location(config), rw=True)
    try:
        generate_key(session, KeySpec(key_type), label)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        session.close()
    spki = key_public_info(config, label)
    _post(
        config,
        "key_generated",
        label=label,
        key_type=key_type,
        public_key_sha256=hashlib.sha256(spki).hexdigest(),
    )
    click.echo(f"generated {key_type} key {label!r} (sensitive, not extractable)")


@keys.command("csr")
@config_option
@click.option("--common-name", required=True, help="Subject CN of the TSA certificate.")
@click.option("--organization", default=None, help="Subject O.")
@click.option("--out", type=click.Path(dir_okay=False), default="-", help="Output file (PEM).")
@click.option("--label", default=None, help="Key to sign with (default: [pkcs11] key_label).")
def keys_csr(
    config_path: str, common_name: str, organization: str | None, out: str, label: str | None
) -> None:
    """Write a CSR signed by a key in the token, for a CA to issue the TSA certificate."""
    from tsa_server.issuance.ceremony import write_csr

    config = load_config(config_path)
    pem_bytes = write_csr(config, common_name, organization, label)
    _post(
        config,
        "csr_made",
        label=label or config.pkcs11.key_label,
        common_name=common_name,
        organization=organization,
        csr_sha256=hashlib.sha256(pem_bytes).hexdigest(),
    )
    if out == "-":
        click.echo(pem_bytes.decode(), nl=False)
    else:
        Path(out).write_bytes(pem_bytes)
        click.echo(f"wrote {out}")


@keys.command("import-chain")
@config_option
@click.option(
    "--label",
    default=None,
    help="A key to roll over to: the chain goes into the key schedule (then `activate`).",
)
@click.argument("chain_file", type=click.Path(exists=True, dir_okay=False))
def keys_import_chain(config_path: str, chain_file: str, label: str | None) -> None:
    """Install a certificate chain (TSA certificate first) after checking it fits the key."""
    from tsa_server.issuance.ceremony import import_chain
    from tsa_server.issuance.rollover import import_key_chain

    config = load_config(config_path)
    data = Path(chain_file).read_bytes()
    if label is None:
        count = import_chain(config, data)
        _post(config, "chain_imported", label=config.pkcs11.key_label, chain_length=count)
        click.echo(f"installed a chain of {count} certificate(s)")
        return
    entry = import_key_chain(config, label, data, datetime.now(UTC))
    _post(
        config,
        "chain_imported",
        label=label,
        certificate_sha256=entry.certificate_sha256,
        not_before=entry.not_before.isoformat(),
        not_after=entry.not_after.isoformat(),
    )
    click.echo(
        f"imported the chain of key {label!r} (certificate SHA-256 "
        f"{entry.certificate_sha256[:16]}...); schedule it with `tsa keys activate`"
    )


@keys.command("activate")
@config_option
@click.option("--label", required=True, help="The key to activate (its chain imported).")
@click.option("--at", "at_text", required=True, help="ISO 8601 instant with a zone, or 'now'.")
def keys_activate(config_path: str, label: str, at_text: str) -> None:
    """Schedule the switch to another key: the server signs with it from that instant."""
    from tsa_server.issuance.rollover import activate, nudge_server
    from tsa_server.signing.schedule import parse_instant, text_of

    config = load_config(config_path)
    at = None if at_text.strip().lower() == "now" else parse_instant(at_text)
    done = activate(config, label, at, datetime.now(UTC))
    _post(
        config,
        "key_activation_scheduled",
        label=label,
        activate_at=text_of(done.at),
        certificate_sha256=done.key.certificate_sha256,
        retires_at=text_of(done.retires_at),
        replaces=done.replaces,
    )
    pid = nudge_server(config)
    click.echo(
        f"key {label!r} activates at {text_of(done.at)} (replacing {done.replaces!r}) and "
        f"retires at {text_of(done.retires_at)}; "
        + (
            f"the server (PID {pid}) was told to read the schedule now"
            if pid
            else "a running server reads the schedule within a second (or on SIGHUP)"
        )
    )


@keys.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def keys_list(config_path: str, as_json: bool) -> None:
    """The signing keys: active, scheduled, retired, with their usage-period ends."""
    from tsa_server.issuance.rollover import key_rows

    rows = key_rows(load_config(config_path), datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        line = f"{row['label']:<24} {row['state']:<9}"
        if row.get("activate_at"):
            line += f" from {row['activate_at']}"
        if "retires_at" in row:
            line += f"  retires {row['retires_at']} (usage ends {row['usage_ends']}"
            line += f", certificate expires {row['not_after']})"
        else:
            line += f"  {row['problem']}"
        click.echo(line)


@keys.command("dev-sign")
@config_option
@click.argument("csr_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Chain file (PEM).")
@click.option("--days", default=825, show_default=True, type=click.IntRange(1, 3650))
def keys_dev_sign(config_path: str, csr_file: str, out: str, days: int) -> None:
    """Development only: the development CA issues a TSA certificate for a CSR."""
    from tsa_server.issuance.rollover import dev_sign

    chain = dev_sign(load_config(config_path), Path(csr_file).read_bytes(), days, datetime.now(UTC))
    Path(out).write_bytes(chain)
    click.echo(f"wrote {out} (development CA: not trusted outside development)")


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
