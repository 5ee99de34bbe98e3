"""The served EvidenceService of [evidence]: its pricing policy and settings from the
configuration, the issuer's time-stamps, the operations log."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from tsa_server.config import EvidenceConfig
from tsa_server.evidence.blobs import BlobStore
from tsa_server.evidence.ers.renewal import ErsSettings
from tsa_server.evidence.ports import OpsRecorder, Timestamp
from tsa_server.evidence.service import EvidenceService
from tsa_server.evidence.settings import EvidenceSettings
from tsa_server.evidence.store import EvidenceStore
from tsa_server.fees import DEFAULT_POLICY, load_policy

log = logging.getLogger("tsa.evidence")


class Issuing(Protocol):
    """What the service needs of the issuer (issuance.Issuer): its time-stamps."""

    @property
    def timestamp(self) -> Timestamp: ...


def open_evidence_service(
    conf: EvidenceConfig,
    store: EvidenceStore,
    blobs: BlobStore,
    issuer: Issuing,
    ops: OpsRecorder | None,
) -> EvidenceService:
    """The served EvidenceService of [evidence] (tsa_server.config.EvidenceConfig): the
    pricing policy file, or the built-in policy with a warning when it does not exist
    (a malformed file is a PricingError: the server does not start)."""
    path = Path(conf.pricing)
    if path.exists():
        policy = load_policy(path)
    else:
        log.warning("no pricing policy at %s: using the built-in defaults", path)
        policy = DEFAULT_POLICY
    settings = EvidenceSettings(
        max_upload_bytes=conf.max_upload_bytes,
        max_upload_request_bytes=conf.max_upload_request_bytes,
        max_batch_items=conf.max_batch_items,
        operators=frozenset(conf.operators),
        monthly_item_quota=conf.monthly_item_quota,
        records=ErsSettings(
            renew_before=timedelta(days=conf.ers_renew_before_days),
            weak_hashes=frozenset(conf.ers_weak_hashes),
        ),
    )
    return EvidenceService(
        store, blobs, issuer.timestamp, ops=ops, policy=policy, settings=settings
    )
