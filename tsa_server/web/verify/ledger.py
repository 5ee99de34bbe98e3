"""The ``ledger`` section of a POST /verify answer: where a token this TSA signed sits
in its ledger, with an RFC 6962 inclusion proof a relying party can check.

The proof is against the latest signed checkpoint when that covers the entry; the
answer then carries the checkpoint's signed note (C2SP), so the proof can be checked
against a root the log signed (``tsa-ledger`` or any C2SP note verifier, with the key
at ``/ledger/tokens/vkey``). An entry newer than the latest checkpoint (checkpoints
come every ``[ledger] checkpoint_interval_s``) is proved against the current tree
instead: ``checkpoint`` is null and ``checkpoint_pending`` says that the next
checkpoint will sign it.

Cost: the entry is found through the serial index and the proof read from the store's
stored subtree hashes (ledger/store/sqlite_tree.py), O(log n) rows however large the
ledger grows. It runs in the ledger read pool (web/ledger/reads.py): off the event
loop, on that thread's own reader, never one connection per request.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ledger.hashing import leaf_hash
from ledger.merkle import root_from_reader
from ledger.proofs import inclusion_proof, verify_inclusion
from ledger.serials import serial_text
from ledger.store.base import Reader, SignedCheckpoint
from tsa_server.rfc3161.verify import VerificationReport
from tsa_server.web.ledger import catalog

log = logging.getLogger("tsa.web.verify")


async def ledger_section(
    request: web.Request, token_der: bytes | None, report: VerificationReport
) -> dict[str, Any]:
    """The section for a token whose signer certificate is this TSA's."""
    assert report.fields is not None and token_der is not None
    serial = report.fields.serial_number
    try:
        _, section = await catalog.first_found(
            request, lambda r: ledger_lookup(r, serial), lambda found: bool(found["found"])
        )
    except web.HTTPServiceUnavailable:
        return {"found": None, "error": "the ledger is busy: verify again in a second"}
    except Exception as exc:
        log.exception("ledger lookup for serial %s failed", serial_text(serial))
        return {"found": None, "error": f"the ledger could not be read: {type(exc).__name__}"}
    if not section["found"]:
        return _missing(section, serial, report.check("signature").passed)
    if bytes.fromhex(section["leaf_hash"]) != leaf_hash(token_der):
        return {
            "found": True,
            "token_matches": False,
            "index": section["index"],
            "leaf_hash": section["leaf_hash"],
            "reason": "the ledger entry with this serial holds a different token: this is not "
            "the token this TSA issued (it was altered or re-encoded)",
        }
    return {**section, "token_matches": True}


def _missing(section: dict[str, Any], serial: int, signature_ok: bool) -> dict[str, Any]:
    if signature_ok:
        log.error("token serial %s signed by this TSA is not in the ledger", serial_text(serial))
        section["reason"] = (
            f"this TSA signed the token (serial {serial_text(serial)}) but its ledger has no entry "
            "for it: the ledger is incomplete or the signing key was used outside it"
        )
    else:
        section["reason"] = (
            f"the ledger has no entry with serial {serial_text(serial)}, and the token's signature "
            "does not verify: this TSA did not issue this token as it is"
        )
    return section


def ledger_lookup(reader: Reader, serial: int) -> dict[str, Any]:
    """The entry with ``serial`` and its inclusion proof: against the latest signed
    checkpoint when it covers the entry, else against the current tree. O(log n)."""
    entry = reader.entry_by_serial(serial)
    if entry is None:
        return {"found": False, "serial": serial_text(serial)}
    latest = reader.latest_checkpoint()
    if latest is not None and entry.index < latest.size:
        size, root, note, pending = latest.size, latest.root, latest.note, None
        nodes = reader.node_reader(size)
    else:
        size = reader.size()  # read after the entry: the tree covers it
        nodes = reader.node_reader(size)
        root, note, pending = root_from_reader(size, nodes), None, _pending(latest, size)
    proof = inclusion_proof(entry.index, size, nodes)
    verify_inclusion(entry.index, size, entry.leaf_hash, proof, root)  # never serve a bad proof
    return {
        "found": True,
        "index": entry.index,
        "leaf_hash": entry.leaf_hash.hex(),
        "tree_size": size,
        "root": root.hex(),
        "inclusion_proof": [h.hex() for h in proof],
        "checkpoint": note,
        "checkpoint_pending": pending,
    }


def _pending(latest: SignedCheckpoint | None, size: int) -> str:
    signed = f"the latest has size {latest.size}" if latest else "none is signed yet"
    return (
        f"the entry is newer than the ledger's signed checkpoints ({signed}): the proof "
        f"is against the current tree of {size} entries, which the next checkpoint signs"
    )
