"""`tsa verify`: the checks of POST /verify, offline, on a token file.

Exit status 0 when the token is valid, 2 when it is not (every check is printed with
its reason; a truncated token too), 1 for a usage error: a bad option combination, an
unreadable file, a file that is not a token (a request, say) or not certificates.
Errors are one line on stderr (JSON on stdout with --json), never a traceback
(ledger/cli_run.py). Trust roots are the --ca files when given (the configuration is then only
read, if present, for its time zone), else the configuration's [verify] trust roots.

`tsa verify --evidence-record ITEM.ers --data FILE` checks an RFC 4998 evidence record
instead (evidence/ers/command.py): every archive timestamp, each at its own time, with
the same trust roots and exit statuses.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from asn1crypto import x509 as asn1_x509

from ledger.cli_run import CheckFailed
from tsa_server.config import DEFAULT_CONFIG

#: No token is this large; refuse before reading a wrong file into memory.
MAX_TOKEN_FILE = 16 << 20
#: An evidence record grows by a token per renewal: decades of renewals stay far below.
MAX_RECORD_FILE = 64 << 20


T = TypeVar("T")


class UsageFailure(click.ClickException):
    """A usage or input error of `tsa verify` (exit status 1, ledger/cli_run.py)."""


@click.command("verify")
@click.argument("token", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--evidence-record",
    "record_file",
    type=click.Path(dir_okay=False),
    help="Check this RFC 4998 evidence record (.ers, DER) against --data instead of a token.",
)
@click.option(
    "--data",
    "data_file",
    type=click.Path(dir_okay=False),
    help="The time-stamped file (hashed with the token's imprint algorithm).",
)
@click.option("--digest", metavar="HEX", help="The digest of the time-stamped data, in hex.")
@click.option(
    "--digest-algorithm",
    metavar="NAME",
    help="Algorithm of --digest (e.g. sha256); the token must use it.",
)
@click.option(
    "--ca",
    "ca_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Trusted root certificate(s), PEM or DER; repeatable. Replaces the "
    "configured trust roots.",
)
@click.option(
    "--tsa-cert",
    "tsa_cert_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="TSA certificate and intermediates for tokens that carry none; repeatable.",
)
@click.option("--nonce", metavar="INT", help="Expected nonce (decimal or 0x-hex).")
@click.option("--policy", metavar="OID", help="Expected policy OID.")
@click.option(
    "--tsa-name",
    metavar="NAME",
    help="Expected TSA: RFC 4514 subject (CN=...,O=...) or a common name.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Configuration file (trust roots, time zone); optional with --ca.",
)
def verify(
    token: str | None,
    record_file: str | None,
    data_file: str | None,
    digest: str | None,
    digest_algorithm: str | None,
    ca_files: tuple[str, ...],
    tsa_cert_files: tuple[str, ...],
    nonce: str | None,
    policy: str | None,
    tsa_name: str | None,
    as_json: bool,
    config_path: str,
) -> None:
    """Verify a time-stamp token (or --evidence-record) offline: exit 0 valid, 2 invalid,
    1 usage error."""
    from tsa_server.rfc3161.verify import TokenDecodeError, VerifyOptions, load_token, verify_token

    if record_file is not None:
        others = [digest, digest_algorithm, nonce, policy, tsa_name]
        if token is not None or any(v is not None for v in others):
            raise UsageFailure(
                "--evidence-record goes with --data, --ca, --tsa-cert, --json, --config only"
            )
        if data_file is None:
            raise UsageFailure("--evidence-record needs --data FILE (the item's original)")
        _verify_record(record_file, data_file, ca_files, tsa_cert_files, as_json, config_path)
        return
    if token is None:
        raise UsageFailure("give a TOKEN file (or --evidence-record FILE with --data FILE)")
    if data_file is not None and digest is not None:
        raise UsageFailure("give --data or --digest, not both")
    if digest_algorithm is not None and digest is None:
        raise UsageFailure("--digest-algorithm goes with --digest")
    try:
        loaded = load_token(_read_token(token))
    except TokenDecodeError as exc:
        if exc.truncated:  # a damaged token: the check failed (2), the input was right
            raise CheckFailed(f"{token}: INVALID: {exc}") from None
        raise UsageFailure(f"{token}: {exc}") from None
    roots, time_zone = _roots_and_zone(ca_files, config_path)
    extra = [c for path in tsa_cert_files for c in _certificates(path, "--tsa-cert")]
    values: dict[str, Any] = {
        "trust_roots": roots,
        "extra_certs": extra,
        "nonce": _parse(_int, nonce, "--nonce"),
        "policy": _parse(_oid, policy, "--policy"),
        "tsa_name": tsa_name,
    }
    if digest is not None:
        values["digest"] = _parse(_hex, digest, "--digest")
        values["digest_algorithm"] = digest_algorithm
    if data_file is None:
        report = verify_token(loaded, VerifyOptions(**values))
    else:
        try:
            stream = open(data_file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageFailure(f"cannot read {data_file}: {exc.strerror}") from None
        with stream:
            report = verify_token(loaded, VerifyOptions(stream=stream, **values))
    from tsa_server.web.verify.handler import report_json

    body = report_json(report, time_zone)
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        _print_human(body)
    click.get_current_context().exit(0 if report.valid else 2)


def _verify_record(
    record_file: str,
    data_file: str,
    ca_files: tuple[str, ...],
    tsa_cert_files: tuple[str, ...],
    as_json: bool,
    config_path: str,
) -> None:
    from tsa_server.evidence.ers.command import Unusable, check_record_file, render

    record = _read_file(record_file, "the evidence record", MAX_RECORD_FILE)
    roots, _ = _roots_and_zone(ca_files, config_path)
    extra = [c for path in tsa_cert_files for c in _certificates(path, "--tsa-cert")]
    try:
        report = check_record_file(record, record_file, data_file, roots, extra)
    except Unusable as exc:
        raise UsageFailure(str(exc)) from None
    click.echo(render(report, as_json))
    click.get_current_context().exit(0 if report.valid else 2)


def _roots_and_zone(
    ca_files: tuple[str, ...], config_path: str
) -> tuple[list[asn1_x509.Certificate], str]:
    if ca_files:
        roots = [c for path in ca_files for c in _certificates(path, "--ca")]
        return roots, _zone_if_configured(config_path)
    from tsa_server.config import load_config
    from tsa_server.errors import TSAError
    from tsa_server.wiring import load_trust_roots

    try:
        config = load_config(config_path)
        roots = load_trust_roots(config)
    except TSAError as exc:
        raise UsageFailure(f"{exc} (or give the trust roots with --ca FILE)") from None
    if not roots:
        raise UsageFailure(
            f"no trust roots: {config.verify.trust_roots} holds no certificate and "
            f"{config.certificates.ca} does not exist; give --ca FILE"
        )
    return roots, config.verify.time_zone


def _zone_if_configured(config_path: str) -> str:
    """The configured time zone when a configuration is readable; UTC otherwise."""
    if not Path(config_path).is_file():
        return "UTC"
    from tsa_server.config import load_config
    from tsa_server.errors import TSAError

    try:
        return load_config(config_path).verify.time_zone
    except TSAError:
        return "UTC"


def _read_file(path: str, what: str, limit: int = MAX_TOKEN_FILE) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageFailure(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageFailure(f"{what} {path} is larger than {limit} bytes")
    return data


def _read_token(path: str) -> bytes:
    return _read_file(path, "the token")


def _certificates(path: str, option: str) -> list[asn1_x509.Certificate]:
    from tsa_server.rfc3161.verify import CertificateDecodeError, load_certificates

    try:
        return load_certificates(_read_file(path, f"{option} file"))
    except CertificateDecodeError as exc:
        raise UsageFailure(f"{option} {path} is not PEM or DER certificates: {exc}") from None


def _parse(parser: Callable[[str], T], value: str | None, option: str) -> T | None:
    if value is None:
        return None
    try:
        return parser(value)
    except ValueError as exc:
        raise UsageFailure(f"{option}: {exc}") from None


def _hex(text: str) -> bytes:
    from tsa_server.web.verify.input import BadInput, parse_hex

    try:
        return parse_hex(text)
    except BadInput as exc:
        raise ValueError(exc.reason) from None


def _int(text: str) -> int:
    from tsa_server.web.verify.input import BadInput, parse_int

    try:
        return parse_int(text, "the nonce")
    except BadInput as exc:
        raise ValueError(exc.reason) from None


def _oid(text: str) -> str:
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"{text!r} is not a dotted OID")
    return text


def _print_human(body: dict[str, Any]) -> None:
    failures = [c["name"] for c in body["checks"] if not c["passed"]]
    if body["valid"]:
        click.echo("Verification: VALID")
    else:
        click.echo(f"Verification: INVALID ({len(failures)} failed: {', '.join(failures)})")
    for check in body["checks"]:
        mark = "SKIP" if check["skipped"] else "PASS" if check["passed"] else "FAIL"
        click.echo(f"  {mark} {check['name']}: {check['reason']}")
    fields = body["fields"]
    if fields is None:
        click.echo("The token could not be read far enough to show its fields.")
        return
    click.echo("Token:")
    for label, value in _field_lines(fields):
        click.echo(f"  {label + ':':<18}{value}")


def _field_lines(fields: dict[str, Any]) -> list[tuple[str, str]]:
    accuracy = fields["accuracy"] or {}
    units = (("seconds", "s"), ("millis", "ms"), ("micros", "us"))
    accuracy_text = " ".join(f"{accuracy[k]} {u}" for k, u in units if accuracy.get(k))
    if not fields["accuracy"]:
        accuracy_text = "not stated"
    nonce = fields["nonce"]
    lines = [
        ("serial number", fields["serial_number"]),
        ("genTime (UTC)", fields["gen_time_utc"]),
        ("accuracy", accuracy_text or "0 s"),
        ("policy", fields["policy"]),
        ("TSA name", fields["tsa_name"] or "not given"),
        ("imprint", f"{fields['imprint_algorithm']} {fields['imprint_hex']}"),
        ("nonce", "none" if nonce is None else nonce),
        ("ordering", "yes" if fields["ordering"] else "no"),
    ]
    if fields["time_zone"] != "UTC":
        lines.insert(2, (f"genTime ({fields['time_zone']})", fields["gen_time_local"]))
    signer = fields["signer"]
    if signer is None:
        lines.append(("signer", "certificate not found"))
    else:
        lines += [
            ("signer", signer["subject"]),
            ("signer issuer", signer["issuer"]),
            ("signer valid", f"{signer['not_before']} to {signer['not_after']}"),
            ("signer SHA-256", signer["sha256_fingerprint"]),
        ]
    return lines
