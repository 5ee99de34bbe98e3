"""Checking an incident report offline, with the token log's verifier key and the TSA's
trust roots only: the signed note over the report, the checkpoint note, every listed
token's inclusion proof (ledger.proofs.verify_inclusion, the function the ledger's own
tools use), the window's boundaries, and the time-stamp over the file.

Every problem is collected, not only the first, so a reader sees which tokens fail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import x509 as asn1_x509

from ledger.checkpoint import NoteVerifier, open_checkpoint, open_note
from ledger.errors import LedgerError
from ledger.proofs import verify_inclusion
from tsa_server.incident.report import FORMAT, signature_text
from tsa_server.issuance.opslog import canonical
from tsa_server.rfc3161.verify import VerifyOptions, verify_token

MAX_LISTED_PROBLEMS = 50


@dataclass
class ReportVerdict:
    """What `verify_report` found; valid when no problem was found."""

    report: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    gen_time: str | None = None  # the time-stamp's genTime, when checked

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(problem)
        elif len(self.problems) == MAX_LISTED_PROBLEMS:
            self.problems.append("... further problems not listed")


def verify_report(
    data: bytes,
    log: NoteVerifier,
    tsr: bytes | None,
    *,
    trust_roots: Sequence[asn1_x509.Certificate] = (),
    extra_certs: Sequence[asn1_x509.Certificate] = (),
) -> ReportVerdict:
    """Check a report file (`data`) and its time-stamp (`tsr`, None to skip)."""
    verdict = ReportVerdict()
    try:
        envelope = json.loads(data)
        report, note = envelope["report"], envelope["signature"]
        if not isinstance(report, dict) or not isinstance(note, str):
            raise TypeError("report must be an object and signature a string")
    except (ValueError, KeyError, TypeError) as exc:
        verdict.add(f"not an incident report: {exc}")
        return verdict
    verdict.report = report
    if canonical(envelope) != data:
        verdict.add("the file is not in canonical JSON (it was rewritten or altered)")
    try:
        _check_signature(report, note, log)
    except (KeyError, TypeError, ValueError, LedgerError) as exc:
        verdict.add(f"signature: {exc}")
    try:
        _check_content(report, log, verdict)
    except (KeyError, TypeError, ValueError, LedgerError) as exc:
        verdict.add(f"malformed report: {type(exc).__name__}: {exc}")
    if tsr is not None:
        _check_timestamp(data, tsr, trust_roots, extra_certs, verdict)
    return verdict


def _check_signature(report: dict[str, Any], note: str, log: NoteVerifier) -> None:
    if report.get("format") != FORMAT:
        raise ValueError(f"format is {report.get('format')!r}, not {FORMAT!r}")
    opened = open_note(note, [log])  # NoteError unless the log key signed it
    digest = hashlib.sha256(canonical(report)).digest()
    expected = signature_text(log.name, str(report["id"]), digest).decode()
    if opened.note.text != expected:
        raise ValueError(
            "the signature is over other content: the report was altered after signing"
        )


def _check_content(report: dict[str, Any], log: NoteVerifier, verdict: ReportVerdict) -> None:
    claimed = report["checkpoint"]
    checkpoint, _ = open_checkpoint(claimed["note"], log)
    if checkpoint.size != claimed["size"] or checkpoint.root.hex() != claimed["root"]:
        verdict.add("the checkpoint's size or root differs from its signed note")
    tokens = report["tokens"]
    if report["count"] != len(tokens):
        verdict.add(f"count {report['count']} but {len(tokens)} tokens listed")
    for item in tokens:
        problem = _check_proof(item, checkpoint.size, checkpoint.root)
        if problem:
            verdict.add(f"token {item.get('serial')} (index {item.get('index')}): {problem}")
    indices = [item["index"] for item in tokens]
    if indices != sorted(set(indices)):
        verdict.add("tokens are not listed once each in index order")
    window = report["selection"].get("time")
    if window is not None:
        _check_window(report, window, indices, checkpoint.size, checkpoint.root, verdict)


def _check_proof(item: dict[str, Any], size: int, root: bytes) -> str | None:
    try:
        leaf = bytes.fromhex(item["leaf_hash"])
        path = [base64.b64decode(h, validate=True) for h in item["proof"]]
        verify_inclusion(int(item["index"]), size, leaf, path, root)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return f"unreadable proof: {exc}"
    except LedgerError as exc:
        return f"inclusion proof fails: {exc}"
    return None


def _check_window(
    report: dict[str, Any],
    window: dict[str, Any],
    indices: list[int],
    size: int,
    root: bytes,
    verdict: ReportVerdict,
) -> None:
    start, end = window["from_ms"], window["to_ms"]
    for item in report["tokens"]:
        if not start <= item["gen_time_ms"] <= end:
            verdict.add(f"token {item['serial']}: genTime {item['gen_time']} outside the window")
    scanned = report["scanned"]
    if "key" not in report["selection"]:
        expected = list(range(scanned["from_index"], scanned["to_index"]))
        if indices != expected:
            verdict.add("the window's tokens are not the contiguous index range it states")
    bounds = report.get("boundaries") or {}
    before, after = bounds.get("before"), bounds.get("after")
    if scanned["from_index"] > 0:
        if before is None or before["index"] != scanned["from_index"] - 1:
            verdict.add("the entry before the window is missing")
        elif before["gen_time_ms"] >= start:
            verdict.add("the entry before the window is inside it")
    if scanned["to_index"] < size:
        if after is None or after["index"] != scanned["to_index"]:
            verdict.add("the entry after the window is missing")
        elif after["gen_time_ms"] <= end:
            verdict.add("the entry after the window is inside it")
    for name, item in (("before", before), ("after", after)):
        if item is not None:
            problem = _check_proof(item, size, root)
            if problem:
                verdict.add(f"boundary {name}: {problem}")


def _check_timestamp(
    data: bytes,
    tsr: bytes,
    trust_roots: Sequence[asn1_x509.Certificate],
    extra_certs: Sequence[asn1_x509.Certificate],
    verdict: ReportVerdict,
) -> None:
    checked = verify_token(
        tsr, VerifyOptions(trust_roots=trust_roots, extra_certs=extra_certs, data=data)
    )
    if not checked.valid:
        for failure in checked.failures:
            verdict.add(f"time-stamp: {failure.name}: {failure.reason}")
    elif checked.fields is not None:
        verdict.gen_time = checked.fields.gen_time.isoformat()
