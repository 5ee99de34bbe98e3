"""`tsa incident`: make, sign, time-stamp, store and announce one incident report.

The steps, each failing with one clear line and leaving nothing behind: check what was
asked; open the checkpoint key in the token (PKCS#11, never extracted) and read-only
readers of the token and operations logs (the server may be running: it keeps writing);
resolve the selection; wait for a signed checkpoint covering the token log as it was;
scan and prove (report.py); sign with the checkpoint key; have the running server
time-stamp the file (timestamp.py); write both files (files.py); leave an
`incident_published` event in the operations inbox, which the server records in the
operations log within seconds (issuance/ops_inbox.py).

Why the checkpoint key signs and not the TSA key: after a key compromise the TSA key
is the one that can no longer be trusted, and the checkpoint key's published verifier
key is what a reader needs anyway to check the checkpoint the proofs lead to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509

from ledger.checkpoint import NoteSigner, encode_vkey
from ledger.serials import serial_text
from ledger.store.base import Reader
from tsa_server.config import Config
from tsa_server.incident import IncidentError
from tsa_server.incident.files import Written, new_id, write_report
from tsa_server.incident.report import build_report, sign_envelope
from tsa_server.incident.selection import (
    Selection,
    parse_fingerprint,
    resolve_key,
    time_window,
)
from tsa_server.incident.timestamp import request_timestamp
from tsa_server.issuance import ops_inbox
from tsa_server.issuance.publisher import SIG_ED25519, raw_ed25519_public_key

MAX_REASON = 1000
MAX_TOKENS_LIMIT = 100_000
DEFAULT_MAX_TOKENS = 10_000


@dataclass(frozen=True)
class Ask:
    """What the operator asked for, as typed."""

    reason: str
    key: str | None = None
    from_text: str | None = None
    to_text: str | None = None
    certificates: Sequence[asn1_x509.Certificate] = ()  # --cert: more known certificates
    max_tokens: int = DEFAULT_MAX_TOKENS
    wait_s: float = 30.0


@dataclass(frozen=True)
class Published:
    id: str
    files: Written
    sha256: str
    count: int
    checkpoint_size: int
    timestamp_serial: str
    inbox_id: str


def check_ask(ask: Ask) -> tuple[str | None, tuple[int, int] | None, str]:
    """(fingerprint, window, reason) once every option is sound; IncidentError if not."""
    if ask.key is None and ask.from_text is None and ask.to_text is None:
        raise IncidentError("say which tokens: --key FINGERPRINT, or --from T1 --to T2 (or both)")
    fingerprint = parse_fingerprint(ask.key) if ask.key is not None else None
    window = time_window(ask.from_text, ask.to_text)
    reason = ask.reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise IncidentError(f"--reason: say what happened in 1 to {MAX_REASON} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in reason):
        raise IncidentError("--reason: no control characters")
    if not 1 <= ask.max_tokens <= MAX_TOKENS_LIMIT:
        raise IncidentError(f"--max-tokens must be 1..{MAX_TOKENS_LIMIT}")
    return fingerprint, window, reason


def open_reader(config: Config, log: str) -> Reader:
    """A read-only reader of this node's log ("tokens" or "ops"), beside a running server."""
    from tsa_server.wiring.databases import open_reader as reader_of

    path = Path(config.ledger.path if log == "tokens" else config.ledger.ops_path)
    if not config.database.url and not path.is_file():
        raise IncidentError(f"no {log} ledger at {path} ([ledger] in the configuration)")
    return reader_of(config, log)


def publish_incident(config: Config, ask: Ask, url: str) -> Published:
    """Make and publish one report; `url` is the running server's root."""
    from tsa_server.signing.pkcs11 import Pkcs11Signer
    from tsa_server.wiring import load_chain, load_trust_roots, token_location

    fingerprint, window, reason = check_ask(ask)
    chain = load_chain(config)
    trust_roots = load_trust_roots(config)
    origin = config.ledger.origin
    signer = Pkcs11Signer(token_location(config), config.ledger.checkpoint_key_label)
    try:
        public_key = raw_ed25519_public_key(signer)
        note_signer = NoteSigner(origin, public_key, lambda m: signer.sign(m, "sha512"))
        tokens, ops = open_reader(config, "tokens"), None
        try:
            ops = open_reader(config, "ops")
            selection = _selection(fingerprint, window, [chain[0], *ask.certificates], ops)
            report_id = new_id()
            report = build_report(
                tokens,
                selection,
                report_id=report_id,
                reason=reason,
                origin=origin,
                vkey=encode_vkey(origin, SIG_ED25519, public_key),
                max_tokens=ask.max_tokens,
                wait_s=ask.wait_s,
            )
        finally:
            tokens.close()
            if ops is not None:
                ops.close()
        envelope = sign_envelope(report, note_signer)
    finally:
        signer.close()
    digest = hashlib.sha256(envelope).digest()
    tsr = request_timestamp(
        url,
        digest,
        trust_roots=trust_roots,
        extra_certs=chain,
        ca_file=Path(config.certificates.ca),
    )
    files = write_report(config.ledger.incidents_dir, report_id, envelope, tsr)
    serial = _token_serial(tsr)
    inbox_id = ops_inbox.post(
        config.ledger.ops_inbox_dir,
        "incident_published",
        incident_id=report_id,
        report_sha256=digest.hex(),
        timestamp_sha256=hashlib.sha256(tsr).hexdigest(),
        timestamp_serial=serial,
        selection=_summary(selection),
        count=report["count"],
        checkpoint_size=report["checkpoint"]["size"],
        reason=reason,
    )
    return Published(
        report_id,
        files,
        digest.hex(),
        report["count"],
        report["checkpoint"]["size"],
        serial,
        inbox_id,
    )


def _selection(
    fingerprint: str | None,
    window: tuple[int, int] | None,
    known: Sequence[asn1_x509.Certificate],
    ops: Reader,
) -> Selection:
    from_ms, to_ms = window if window is not None else (None, None)
    if fingerprint is None:
        return Selection(from_ms=from_ms, to_ms=to_ms)
    kind, certificates, events = resolve_key(fingerprint, known, ops)
    return Selection(fingerprint, kind, certificates, from_ms, to_ms, tuple(events))


def _summary(selection: Selection) -> dict[str, Any]:
    """The selection in the operations-log event: small whatever the report holds."""
    summary: dict[str, Any] = {}
    if selection.by_key:
        summary["key"] = selection.fingerprint
        summary["key_kind"] = selection.fingerprint_kind
        summary["certificates_sha256"] = sorted(c.hex() for c in selection.certificates)
    if selection.by_time:
        summary["from_ms"], summary["to_ms"] = selection.from_ms, selection.to_ms
    return summary


def _token_serial(tsr: bytes) -> str:
    token = tsp.TimeStampResp.load(tsr)["time_stamp_token"]
    tst = token["content"]["encap_content_info"]["content"].parsed
    return serial_text(int(tst["serial_number"].native))
