"""A deliberately dumb reference of RFC 6962 §2.1 (docs/spec/ledger.md B.1-B.3), for tests only.

MTH, PATH, PROOF and SUBPROOF are transcribed from the recursive definitions and share
no code with ledger.merkle or ledger.proofs (only hashlib). `mth` is memoised on the
(start, end) range so that checking every pair of sizes up to a few hundred stays fast;
the memo changes nothing about what is computed.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class ReferenceTree:
    """D[n] = the entries; MTH/PATH/PROOF over slices D[start:end]."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = list(entries)
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return _sha256(b"")
        if n == 1:
            return _sha256(b"\x00" + self.entries[start])
        k = largest_power_of_two_below(n)
        return _sha256(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))

    def root(self, n: int) -> bytes:
        return self.mth(0, n)

    def leaf_hash(self, m: int) -> bytes:
        return self.mth(m, m + 1)

    def path(self, m: int, n: int) -> list[bytes]:
        """PATH(m, D[n])."""
        return self._path(m, 0, n)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return self._path(m, start, start + k) + [self.mth(start + k, end)]
        return self._path(m - k, start + k, end) + [self.mth(start, start + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, start: int, end: int, b: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if b else [self.mth(start, end)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return self._subproof(m, start, start + k, b) + [self.mth(start + k, end)]
        return self._subproof(m - k, start + k, end, False) + [self.mth(start, start + k)]
