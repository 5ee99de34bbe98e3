"""What the issuance pipeline reports as it goes, for monitoring (tsa_server/metrics/):
once per batch and once per commit, never per request, so that the hot path pays a
method call per batch at most. The issuer counts its tokens and refusals itself (plain
integers, read when metrics are scraped)."""

from __future__ import annotations

from typing import Protocol


class IssuanceObserver(Protocol):
    def signed(self, size: int, seconds: float) -> None:
        """A batch of `size` requests was signed in `seconds` (worker or inline)."""
        ...

    def committed(self, tokens: int, seconds: float) -> None:
        """One durable ledger commit of `tokens` tokens took `seconds` (committer thread)."""
        ...

    def signer_failed(self) -> None:
        """The signer (the HSM) failed a batch or a readiness probe."""
        ...
