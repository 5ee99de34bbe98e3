"""`tsa audit`: the ledger replay of `tsa-ledger audit` plus, for every token, the full
RFC 3161 verification of tsa_server.rfc3161.verify (signature, ESSCertID, EKU, chain to
the trust roots at genTime). The ledger package cannot do this itself: it must not
depend on the server's verifier (dependencies point one way).

Tokens in the fixed shape of a fully verified token take the lean path
(rfc3161/verify_lean.py: same checks, the constant parts verified once per frame); any
other token, and any token a lean check rejects, takes the full verifier, whose report
names the failure."""

from __future__ import annotations

import click

from ledger.audit import Inspection, inspect_token
from ledger.binding import LedgerBinding
from ledger.cli import print_reports, run_audit, with_audit_options
from ledger.cli_sources import audit_each
from tsa_server.cli.options import config_option
from tsa_server.rfc3161.verify import VerifyOptions, load_certificates, verify_token
from tsa_server.rfc3161.verify_lean import LeanVerifier
from tsa_server.rfc3161.verify_lean_der import NotLean, der_fields, der_integer


def _lean_binding(values: tuple[bytes, ...]) -> LedgerBinding | None:
    """ledger.binding.LedgerBinding.decode of the first LedgerBinding value, for the DER
    the TSA writes; NotLean for anything else (the full path then decodes it)."""
    if not values:
        return None
    version, origin, leaf, anchor, root = der_fields(values[0], (0x02, 0x0C, 0x02, 0x02, 0x04))
    numbers = der_integer(version), der_integer(leaf), der_integer(anchor)
    if numbers[0] != 1 or numbers[1] < 0 or numbers[2] < 0 or len(root) != 32:
        raise NotLean("LedgerBinding values out of range")
    return LedgerBinding(origin.decode("utf-8"), numbers[1], numbers[2], root)


class TokenInspector:
    """The ledger's own inspection of a token plus every verification check that failed
    (the message imprint is not checkable: an auditor holds tokens, not the documents).
    Each audit worker process gets its own copy as it starts (ledger/audit.py)."""

    def __init__(self, options: VerifyOptions, *, lean: bool = True) -> None:
        self.options = options
        self.lean = LeanVerifier(options) if lean else None  # None: all by the full path

    def __call__(self, token: bytes) -> Inspection:
        if self.lean is not None:
            verified = self.lean.verify(token)
            if verified is not None:
                try:
                    binding = _lean_binding(verified.extensions)
                except (NotLean, ValueError):  # ValueError covers bad UTF-8 and shapes
                    pass
                else:
                    return Inspection(
                        verified.serial, verified.gen_time_ms, verified.imprint, binding
                    )
        return self.in_full(token)

    def in_full(self, token: bytes) -> Inspection:
        """The inspection by the full verifier alone."""
        seen = inspect_token(token)
        report = verify_token(token, self.options)
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
@click.option(
    "--no-lean",
    is_flag=True,
    help="Verify every token with the full verifier (slower; same checks and findings).",
)
@config_option
def audit_command(
    source: str,
    as_json: bool,
    quiet: bool,
    vkey: str | None,
    resume: str | None,
    jobs: int | None,
    ca_files: tuple[str, ...],
    tsa_certs: tuple[str, ...],
    no_lean: bool,
    config_path: str,
) -> None:
    """Replay the token log at SOURCE (or every log a TSA server lists, when SOURCE is
    its URL) and verify every token's signature and chain."""
    extra = [c for path in tsa_certs for c in load_certificates(open(path, "rb").read())]
    if ca_files:
        roots = [c for path in ca_files for c in load_certificates(open(path, "rb").read())]
    else:  # this TSA's own view: its trust roots, and its chain for certReq=false tokens
        from tsa_server.config import load_config
        from tsa_server.wiring import load_chain, load_trust_roots

        config = load_config(config_path)
        roots = load_trust_roots(config)
        extra = extra or load_chain(config)
    inspector = TokenInspector(
        VerifyOptions(trust_roots=roots, extra_certs=extra), lean=not no_lean
    )
    reports = [
        (
            log,
            run_audit(
                log,
                vkey=vkey,
                tokens=None,
                quiet=quiet,
                jobs=jobs,
                inspect=inspector,
                resume=resume,
            ),
        )
        for log in audit_each(source, vkey, resume)
    ]
    print_reports(reports, as_json)
