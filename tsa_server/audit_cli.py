"""`tsa audit`: the ledger replay of `tsa-ledger audit` plus, for every token, the full
RFC 3161 verification of tsa_server.rfc3161.verify (signature, ESSCertID, EKU, chain to
the trust roots at genTime). The ledger package cannot do this itself: it must not
depend on the server's verifier (dependencies point one way)."""

from __future__ import annotations

import click

from ledger.audit import Inspection, inspect_token
from ledger.cli import print_report, run_audit, with_audit_options
from tsa_server.cli_options import config_option
from tsa_server.rfc3161.verify import VerifyOptions, load_certificates, verify_token

# Set before the worker processes fork; read by inspect_verified in each of them.
_OPTIONS: VerifyOptions | None = None


def inspect_verified(token: bytes) -> Inspection:
    """The ledger's own inspection plus every verification check that failed (the
    message imprint is not checkable: an auditor holds tokens, not the documents)."""
    seen = inspect_token(token)
    report = verify_token(token, _OPTIONS)
    problems = tuple(
        f"{check.name}: {check.reason}"
        for check in report.checks
        if not check.passed and check.name != "message_imprint"
    )
    return Inspection(
        seen.serial, seen.gen_time_ms, seen.imprint, seen.binding, seen.problems + problems
    )


@click.command("audit")
@with_audit_options
@click.option(
    "--ca",
    "ca_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Trusted root certificate(s); default: the configured trust roots.",
)
@click.option(
    "--tsa-cert",
    "tsa_certs",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="TSA certificates for tokens issued without one.",
)
@config_option
def audit_command(
    source: str,
    as_json: bool,
    quiet: bool,
    vkey: str | None,
    resume: str | None,
    jobs: int,
    ca_files: tuple[str, ...],
    tsa_certs: tuple[str, ...],
    config_path: str,
) -> None:
    """Replay the token log at SOURCE and verify every token's signature and chain."""
    global _OPTIONS
    extra = [c for path in tsa_certs for c in load_certificates(open(path, "rb").read())]
    if ca_files:
        roots = [c for path in ca_files for c in load_certificates(open(path, "rb").read())]
    else:  # this TSA's own view: its trust roots, and its chain for certReq=false tokens
        from tsa_server.config import load_config
        from tsa_server.services import load_chain, load_trust_roots

        config = load_config(config_path)
        roots = load_trust_roots(config)
        extra = extra or load_chain(config)
    _OPTIONS = VerifyOptions(trust_roots=roots, extra_certs=extra)
    report = run_audit(
        source,
        vkey=vkey,
        tokens=True,
        quiet=quiet,
        jobs=jobs,
        inspect=inspect_verified,
        resume=resume,
    )
    print_report(report, as_json)
