"""Typed errors of the ledger's pure core (proofs, checkpoints, notes, tiles, chain).

Verification functions raise these and return None on success, so a caller can never
mistake a falsy return value for a valid proof. Every class derives from LedgerError.
"""

from __future__ import annotations


def _hex(value: bytes | None) -> str:
    return "<none>" if value is None else (value.hex() or "<empty>")


class LedgerError(Exception):
    """Root of every error raised by the ledger package."""


class ProofError(LedgerError):
    """A Merkle proof does not verify, or is malformed.

    When the failure is a root mismatch, `expected` is the root the caller trusted and
    `computed` the root the proof leads to; both are also in the message as hex.
    """

    def __init__(
        self, reason: str, *, expected: bytes | None = None, computed: bytes | None = None
    ) -> None:
        self.reason = reason
        self.expected = expected
        self.computed = computed
        message = reason
        if expected is not None or computed is not None:
            message += f": expected root {_hex(expected)}, computed {_hex(computed)}"
        super().__init__(message)


class InclusionProofError(ProofError):
    """An inclusion proof (RFC 9162 §2.1.3.2) failed."""


class ConsistencyProofError(ProofError):
    """A consistency proof (RFC 9162 §2.1.4.2) failed."""


class ProofRequestError(LedgerError, ValueError):
    """A proof was requested for impossible sizes or indices (an HTTP 400, not a 500)."""


class CheckpointError(LedgerError):
    """A checkpoint body is malformed (origin, size or root line)."""


class NoteError(LedgerError):
    """A signed note is malformed, or no trusted signature on it verifies."""


class TileError(LedgerError, ValueError):
    """A tile path, tile or entry bundle is malformed or impossible."""


class ChainError(LedgerError):
    """A stored hash-chain value disagrees with the replayed chain (B.8)."""

    def __init__(self, index: int, expected: bytes | None, stored: bytes | None) -> None:
        self.index = index
        self.expected = expected
        self.stored = stored
        super().__init__(
            f"hash chain differs at index {index}: expected {_hex(expected)}, stored {_hex(stored)}"
        )


class LedgerWriteError(LedgerError):
    """An append did not become durable (disk full, I/O error, deposed writer)."""
