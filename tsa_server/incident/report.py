"""The incident report: its JSON, the checkpoint its proofs lead to, and its signature.

A report file is canonical JSON (sorted keys, no spaces, UTF-8, as the operations log
writes events) of an envelope:

    {"report": {...}, "signature": "<signed note>"}

`report` holds `format` ("tsa-incident-report/v1"), `id`, `created`, `reason`, `log`
(the token log's origin and checkpoint verifier key), `selection` (selection.py),
`scanned` (the index range examined), `checkpoint` (size, root in hex, and the signed
checkpoint note verbatim), `count`, `tokens` (each: index, serial as openssl prints it,
gen_time, gen_time_ms, hash_algorithm, imprint in hex, leaf_hash in hex, and `proof`,
the RFC 6962 inclusion path as base64 hashes, leaf sibling first) and, for a genTime
window, `boundaries` (the entries just before and after the window's index range, with
their proofs: their genTimes lie outside the window, and the indices in between are
contiguous, so nothing in the window is left out).

`signature` is a C2SP signed note by the checkpoint key, under the token log's origin
(so the log's published vkey verifies it), whose text is four lines:

    tsa-incident-report/v1
    origin <token log origin>
    id <report id>
    sha256 <hex SHA-256 of canonical(report)>

It can never be taken for a checkpoint (one line too many, no tree size). The time-stamp
(<id>.tsr) is over the SHA-256 of the whole file, so `openssl ts -verify -data <id>.json`
checks it.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any

from ledger.checkpoint import SignsNotes, sign_note
from ledger.serials import serial_text
from ledger.store.base import Reader, SignedCheckpoint
from tsa_server.incident import IncidentError
from tsa_server.incident.selection import Match, Selection, iso_ms, scan
from tsa_server.issuance.opslog import canonical

FORMAT = "tsa-incident-report/v1"


def signature_text(origin: str, report_id: str, digest: bytes) -> bytes:
    """The text the checkpoint key signs for a report whose canonical SHA-256 is `digest`."""
    return f"{FORMAT}\norigin {origin}\nid {report_id}\nsha256 {digest.hex()}\n".encode()


def wait_for_checkpoint(
    reader: Reader,
    size: int,
    wait_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SignedCheckpoint:
    """The latest signed checkpoint once it covers the first `size` entries: the running
    server signs one every `[ledger] checkpoint_interval_s` (and a last one when it stops)."""
    deadline = clock() + wait_s
    while True:
        latest = reader.latest_checkpoint()
        if latest is not None and latest.size >= size and latest.size > 0:
            return latest
        if clock() >= deadline:
            have = "none" if latest is None else f"size {latest.size}"
            raise IncidentError(
                f"no signed checkpoint covers the {size} entries of the token log after "
                f"{wait_s:g} s (latest: {have}): the running server signs one every "
                "[ledger] checkpoint_interval_s; start it, or wait and run again"
            )
        sleep(0.2)


def _item(match: Match, proof: list[bytes]) -> dict[str, Any]:
    return {
        "index": match.index,
        "serial": serial_text(match.serial),
        "gen_time": iso_ms(match.gen_time_ms),
        "gen_time_ms": match.gen_time_ms,
        "hash_algorithm": match.imprint_alg,
        "imprint": match.imprint.hex(),
        "leaf_hash": match.leaf_hash.hex(),
        "proof": [base64.b64encode(h).decode() for h in proof],
    }


def _boundary(reader: Reader, index: int, size: int) -> dict[str, Any] | None:
    entry = reader.entry(index) if 0 <= index < size else None
    if entry is None:
        return None
    match = Match(
        entry.index,
        entry.serial,
        entry.gen_time_ms,
        entry.imprint_alg,
        entry.imprint,
        entry.leaf_hash,
    )
    return _item(match, reader.inclusion_proof(index, size))


def build_report(
    reader: Reader,
    selection: Selection,
    *,
    report_id: str,
    reason: str,
    origin: str,
    vkey: str,
    max_tokens: int,
    wait_s: float,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Select, then prove every listed token against the latest signed checkpoint that
    covers the whole token log as it was when the report began."""
    checkpoint = wait_for_checkpoint(reader, reader.size(), wait_s)
    scanned, matches = scan(reader, selection, checkpoint.size, max_tokens)
    created_ms = int(time.time() * 1000) if now_ms is None else now_ms
    report: dict[str, Any] = {
        "format": FORMAT,
        "id": report_id,
        "created": iso_ms(created_ms),
        "reason": reason,
        "log": {"origin": origin, "vkey": vkey},
        "selection": selection.describe(),
        "scanned": {"from_index": scanned.start, "to_index": scanned.stop},
        "checkpoint": {
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
            "note": checkpoint.note,
        },
        "count": len(matches),
        "tokens": [_item(m, reader.inclusion_proof(m.index, checkpoint.size)) for m in matches],
    }
    if selection.by_time:
        report["boundaries"] = {
            "before": _boundary(reader, scanned.start - 1, checkpoint.size),
            "after": _boundary(reader, scanned.stop, checkpoint.size),
        }
    return report


def sign_envelope(report: dict[str, Any], signer: SignsNotes) -> bytes:
    """The report file: canonical JSON of the report and its signed note."""
    digest = hashlib.sha256(canonical(report)).digest()
    note = sign_note(signature_text(report["log"]["origin"], report["id"], digest), [signer])
    return canonical({"report": report, "signature": note.decode()})
