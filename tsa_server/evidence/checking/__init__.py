"""Checking evidence documents a relying party brings to the verification center
(issue 18 item 7, issue 19 item 3): a certificate PDF (pdf.py) or an evidence kit ZIP
(kit.py). Both run in the verifier's worker processes (worker.py: within a CPU and
memory budget, bounds.py); what they find is a list of checks, each with its reason,
and the token the document carries with the digest it must certify. The token itself is
then verified by the same verifier, trust roots and ledger section as POST /verify, and
`combine` folds both into the one report the page shows.

Nothing here reads the network or the disk: the document is bytes in memory, already
bounded in size by the caller (`Limits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: What each kind of document may weigh (the page states these bounds).
PDF_MAX_BYTES = 8 << 20
KIT_MAX_BYTES = 32 << 20


class DocumentRejected(Exception):
    """A document this page refuses to check (malformed, too large, too costly): the
    HTTP status and a reason for the reader."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class DocumentCheck:
    """One check on a document: its name, whether it passed, and why."""

    name: str
    passed: bool
    reason: str
    skipped: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "skipped": self.skipped,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Trust:
    """What a document is checked against: the configured trust roots and this TSA's
    certificates (DER: they cross to a worker process), and this TSA's ledger key
    (a C2SP vkey) with its log's origin."""

    roots: tuple[bytes, ...]
    certificates: tuple[bytes, ...] = ()
    ledger_vkey: str = ""


@dataclass(frozen=True)
class Findings:
    """What checking a document found: its checks, the token it carries (the .tsr as
    found, or None) and the digest (hex) with its algorithm that the token must
    certify, `digest_source` saying where that digest comes from; `facts` are labelled
    values for the reader (who signed, when, which file digest is certified)."""

    kind: str  # "certificate" or "kit"
    checks: tuple[DocumentCheck, ...]
    token: bytes | None = None
    digest: str | None = None
    digest_algorithm: str | None = None
    digest_source: str = ""
    facts: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


def combine(findings: Findings, token_report: dict[str, Any] | None) -> dict[str, Any]:
    """The page's report: the token's (POST /verify's answer) with the document's checks
    first; valid only when every document check passed, the token verified and, for a
    token of this TSA, its ledger holds it."""
    report: dict[str, Any] = {"fields": None, "ledger": None, "issued_by_this_tsa": False}
    report.update(token_report or {})
    token_checks = list(report.get("checks") or [])
    if token_report is None:
        missing = DocumentCheck(
            "token", False, "no time-stamp token could be verified: see the checks above"
        )
        token_checks = [missing.as_json()]
    ledger = report.get("ledger")
    in_ledger = ledger is None or bool(ledger.get("found") and ledger.get("token_matches"))
    report["checks"] = [c.as_json() for c in findings.checks] + token_checks
    report["valid"] = (
        findings.passed
        and token_report is not None
        and bool(token_report.get("valid"))
        and in_ledger
    )
    report["document"] = {
        "kind": findings.kind,
        "facts": [list(f) for f in findings.facts],
        "digest": findings.digest,
        "digest_algorithm": findings.digest_algorithm,
        "digest_source": findings.digest_source,
    }
    return report
