"""`tsa incident`: publish an incident report (EN 319 421 OVR-7.13) listing every token
affected by a key compromise or a loss of calibration, with its inclusion proof; `tsa
incident verify REPORT` checks one offline. The use cases are in tsa_server/incident/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tsa_server.cli.options import URL, config_option, server_url
from tsa_server.incident import IncidentError
from tsa_server.incident.publish import DEFAULT_MAX_TOKENS


def _certificates(paths: tuple[str, ...]) -> list[Any]:
    from tsa_server.rfc3161.verify import load_certificates

    found = []
    for path in paths:
        try:
            certificates = load_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise IncidentError(f"--cert {path}: not a PEM or DER certificate ({exc})") from None
        if not certificates:
            raise IncidentError(f"--cert {path} holds no certificate")
        found.extend(certificates)
    return found


@click.group("incident", invoke_without_command=True)
@config_option
@click.option(
    "--key",
    default=None,
    metavar="SHA256",
    help="The affected certificate's SHA-256 fingerprint, or its public key's "
    "(SubjectPublicKeyInfo DER): every token whose ESSCertIDv2 names it.",
)
@click.option("--from", "from_text", default=None, metavar="T1", help="genTime from (ISO 8601, Z).")
@click.option("--to", "to_text", default=None, metavar="T2", help="genTime to, included.")
@click.option("--reason", default=None, help="What happened (published in the report).")
@click.option(
    "--cert",
    "cert_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A former TSA certificate, so that --key may name it or its key.",
)
@click.option(
    "--max-tokens",
    default=DEFAULT_MAX_TOKENS,
    show_default=True,
    type=int,
    help="Refuse a report listing more tokens (split it by --from/--to).",
)
@click.option(
    "--wait",
    "wait_s",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds to wait for a signed checkpoint covering the whole token log.",
)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Also copy it here.")
@URL
@click.pass_context
def incident(
    ctx: click.Context,
    config_path: str,
    key: str | None,
    from_text: str | None,
    to_text: str | None,
    reason: str | None,
    cert_files: tuple[str, ...],
    max_tokens: int,
    wait_s: float,
    out: str | None,
    url: str | None,
) -> None:
    """Publish an incident report: the affected tokens (by --key and/or --from/--to),
    each with its inclusion proof against a signed checkpoint, signed with the checkpoint
    key, time-stamped by the running server, recorded in the operations log and served
    at /incidents/<id>.json."""
    if ctx.invoked_subcommand is not None:
        if key or from_text or to_text or reason or out:
            raise IncidentError(f"`tsa incident {ctx.invoked_subcommand}` takes no selection")
        return
    from tsa_server.config import load_config
    from tsa_server.incident.publish import Ask, check_ask, publish_incident

    ask = Ask(
        reason=reason if reason is not None else "",
        key=key,
        from_text=from_text,
        to_text=to_text,
        max_tokens=max_tokens,
        wait_s=max(0.0, min(wait_s, 600.0)),
    )
    check_ask(ask)  # every option is checked before anything is opened
    ask = Ask(**{**ask.__dict__, "certificates": _certificates(cert_files)})
    config = load_config(config_path)
    published = publish_incident(config, ask, server_url(config_path, url))
    if out is not None:
        target = Path(out)
        target.write_bytes(published.files.report.read_bytes())
        stamp = target.with_suffix(".tsr") if target.suffix == ".json" else Path(f"{out}.tsr")
        stamp.write_bytes(published.files.timestamp.read_bytes())
        click.echo(f"copied to {target} and {stamp}")
    origin = config.server.origin
    click.echo(f"incident report {published.id}: {published.count} token(s)")
    click.echo(f"  report:     {published.files.report} (sha256 {published.sha256})")
    click.echo(f"  time-stamp: {published.files.timestamp} (serial {published.timestamp_serial})")
    click.echo(f"  proofs against the signed checkpoint of size {published.checkpoint_size}")
    click.echo(f"  published:  {origin}/incidents/{published.id}.json and .tsr")
    click.echo(f"  operations log: incident_published (inbox {published.inbox_id})")


@incident.command("verify")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option(
    "--tsr",
    default=None,
    type=click.Path(dir_okay=False),
    help="Its time-stamp (default: REPORT with .tsr for .json).",
)
@click.option(
    "--vkey",
    required=True,
    help="The token log's checkpoint verifier key (text or @FILE), as "
    "published at /ledger/tokens/vkey.",
)
@click.option(
    "--ca",
    "ca_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Trusted root certificate(s); default: the configured trust roots.",
)
@click.option("--no-timestamp", is_flag=True, help="Do not check the time-stamp.")
@config_option
@click.pass_context
def verify(
    ctx: click.Context,
    config_path: str,
    report: str,
    tsr: str | None,
    vkey: str,
    ca_files: tuple[str, ...],
    no_timestamp: bool,
) -> None:
    """Check an incident report offline: its signature, the checkpoint, every inclusion
    proof and its time-stamp. Exit 0 when valid, 2 when not."""
    from ledger.checkpoint import parse_vkey
    from ledger.errors import LedgerError
    from tsa_server.incident.files import MAX_REPORT_BYTES, MAX_TSR_BYTES, read_bounded
    from tsa_server.incident.verify import verify_report

    text = vkey[1:] if vkey.startswith("@") else vkey
    try:
        text = Path(text).read_text().strip() if vkey.startswith("@") else text.strip()
        verifier = parse_vkey(text).verifier()
    except (OSError, LedgerError) as exc:
        raise IncidentError(f"--vkey: not a verifier key: {exc}") from None
    data = read_bounded(Path(report), MAX_REPORT_BYTES, "report")
    stamp: bytes | None = None
    roots: list[Any] = []
    extra: list[Any] = []
    if not no_timestamp:
        path = Path(tsr) if tsr else _tsr_beside(Path(report))
        stamp = read_bounded(path, MAX_TSR_BYTES, "time-stamp")
        roots, extra = _trust(config_path, ca_files)
    verdict = verify_report(data, verifier, stamp, trust_roots=roots, extra_certs=extra)
    if not verdict.valid:
        for problem in verdict.problems:
            click.echo(f"INVALID: {problem}")
        ctx.exit(2)
    body = verdict.report
    stamped = f"; time-stamped at {verdict.gen_time}" if verdict.gen_time else ""
    click.echo(
        f"OK: incident report {body['id']}: {body['count']} token(s), every inclusion proof "
        f"verifies against the signed checkpoint of size {body['checkpoint']['size']}; "
        f"signed by {verifier.name}{stamped}"
    )


def _tsr_beside(report: Path) -> Path:
    return report.with_suffix(".tsr") if report.suffix == ".json" else Path(f"{report}.tsr")


def _trust(config_path: str, ca_files: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    from tsa_server.rfc3161.verify import load_certificates

    if ca_files:
        roots = []
        for path in ca_files:
            try:
                roots.extend(load_certificates(Path(path).read_bytes()))
            except (OSError, ValueError) as exc:
                raise IncidentError(f"--ca {path}: not a PEM or DER certificate ({exc})") from None
        return roots, []
    from tsa_server.config import load_config
    from tsa_server.wiring import load_chain, load_trust_roots

    config = load_config(config_path)
    return load_trust_roots(config), load_chain(config)
