"""The [evidence] values the evidence service works with (config.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tsa_server.evidence.ers.renewal import ErsSettings


@dataclass(frozen=True)
class EvidenceSettings:
    """[evidence] values the service needs."""

    max_upload_bytes: int = 1 << 30
    max_upload_request_bytes: int = 2 << 30  # all files of one upload request
    max_batch_items: int = 100
    operators: frozenset[str] = frozenset()  # organisations whose admins grant lots
    monthly_item_quota: int = 0  # items certified per organisation per month; 0: none
    records: ErsSettings = field(default_factory=ErsSettings)  # RFC 4998 evidence records
