"""The entry point a verifier worker process runs for the verification center
(web/verify/pool.py `VerifierPool.call`): one document, within the budget of bounds.py."""

from __future__ import annotations

from tsa_server.evidence.checking import DocumentRejected, Findings, Trust
from tsa_server.evidence.checking.bounds import budget

KINDS = ("certificate", "kit")


def check_document(kind: str, body: bytes, trust: Trust) -> Findings:
    """The findings on a certificate PDF or an evidence kit ZIP; DocumentRejected for a
    document this page refuses (the status and reason travel back to the server)."""
    with budget():
        if kind == "certificate":
            from tsa_server.evidence.checking.pdf import check_certificate

            return check_certificate(body, trust)
        if kind == "kit":
            from tsa_server.evidence.checking.kit import check_kit

            return check_kit(body, trust)
    raise DocumentRejected(400, f"unknown kind of document {kind[:40]!r}")
