"""What the evidence service reaches outside the evidence layer, as the service sees it:
the issuer's time-stamps (issuance.Issuer.timestamp) and the operations log
(issuance.opslog.OpsLog)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

#: Issuer.timestamp: the digest and its hash name -> the issued token.
Timestamp = Callable[[bytes, str], Awaitable[Any]]


class OpsRecorder(Protocol):
    """The operations log as the service writes it: one record, its index."""

    def record(self, kind: str, **details: Any) -> int: ...
