"""The audit of a backup's copy, run after it is taken and again before it is restored:
the same replay `tsa audit` runs on a ledger file (ledger/audit.py: every entry, the
hash chain, the Merkle tree, every archived checkpoint against the replay and its
signed note against the log's key, each token through `inspect`), for the token log
and the operations log, and the copied checkpoint directories against the copied
ledgers (what the rollback tripwire checks when the restored server starts).

The checkpoint key is the one the operations log recorded at the last start-up
(`start` events carry `checkpoint_vkey`): the copy vouches for its own key, as a
server's published vkey does; `tsa audit --vkey` pins it for an outside audit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.audit import AuditReport, Inspect, audit, inspect_entry
from ledger.checkpoint import NoteVerifier, encode_vkey, parse_vkey
from ledger.errors import LedgerError
from ledger.store.sqlite import SqliteReader
from tsa_server.backup.checkpoints import check_directory

TOKENS, OPS = "tokens.sqlite", "ops.sqlite"
TOKEN_CHECKPOINTS, OPS_CHECKPOINTS = "checkpoints/tokens", "checkpoints/ops"


@dataclass
class SnapshotAudit:
    reports: dict[str, AuditReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.reports.values())

    def failures(self) -> list[str]:
        found = list(self.problems)
        for log, report in self.reports.items():
            found += [
                f"{log} log index {'-' if f.index is None else f.index} [{f.check}] {f.message}"
                for f in report.failures
            ]
        return found

    def summary(self) -> dict[str, Any]:
        return {
            log: {
                key: value
                for key, value in report.as_dict().items()
                if key in ("ok", "size", "root", "chain_head", "checkpoints", "signatures")
            }
            for log, report in self.reports.items()
        } | {"problems": self.problems}


def last_checkpoint_vkey(ops: SqliteReader) -> str | None:
    """The checkpoint key the latest `start` event of the operations log recorded."""
    end = ops.size()
    while end > 0:
        start = max(0, end - 4096)
        found = None
        for entry in ops.entries(start, end):
            if b'"kind":"start"' in entry.token:
                value = json.loads(entry.token).get("checkpoint_vkey")
                found = value if isinstance(value, str) else found
        if found is not None:
            return found
        end = start
    return None


def _verifiers(
    vkey: str | None, ops_origin: str
) -> tuple[NoteVerifier | None, NoteVerifier | None]:
    if vkey is None:
        return None, None
    key = parse_vkey(vkey)
    ops_key = parse_vkey(encode_vkey(ops_origin, key.sig_type, key.public_key))
    return key.verifier(), ops_key.verifier()


def _stored_node(reader: SqliteReader) -> Any:
    def stored_node(level: int, index: int) -> bytes | None:
        hashes = reader.tile_hashes(level // 8, index >> 8, (index & 255) + 1)
        return hashes[-32:] if len(hashes) == 32 * ((index & 255) + 1) else None

    return stored_node


def audit_snapshot(snapshot: Path, origins: dict[str, str], inspect: Inspect) -> SnapshotAudit:
    """Audit the ledgers and checkpoint directories of ``snapshot``; origins: "tokens"
    and "ops" -> the configured origins."""
    result = SnapshotAudit()
    tokens = SqliteReader(snapshot / TOKENS)
    ops = SqliteReader(snapshot / OPS)
    try:
        try:
            vkey = last_checkpoint_vkey(ops)
            token_verifier, ops_verifier = _verifiers(vkey, origins["ops"])
        except LedgerError as exc:
            result.problems.append(f"the operations log's checkpoint key is unusable: {exc}")
            token_verifier = ops_verifier = None
        for log, reader, verifier, check in (
            ("tokens", tokens, token_verifier, inspect),
            ("ops", ops, ops_verifier, inspect_entry),
        ):
            result.reports[log] = audit(
                reader.entries(),
                checkpoints=reader.checkpoints(),
                verifier=verifier,
                origin=origins[log] if verifier is not None else None,
                inspect=check,
                stored_node=_stored_node(reader),
            )
        for log, reader, directory in (
            ("tokens", tokens, TOKEN_CHECKPOINTS),
            ("ops", ops, OPS_CHECKPOINTS),
        ):
            result.problems += [
                f"{directory}/{problem}"
                for problem in check_directory(snapshot / directory, reader, origins[log])
            ]
    finally:
        tokens.close()
        ops.close()
    return result
