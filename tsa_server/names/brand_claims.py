"""A claimed mark and its proof, checked: what a Group-1 applicant (H-14) or a trademark
complainant (H-13) states becomes the registry's `Mark` and `BrandProof`. The proof must
be an evidence item of the caller's own organisation (by id and/or content SHA-256)."""

from __future__ import annotations

from datetime import datetime

from tsa_server.clock.beijing import BEIJING

from .applicants import BrandProof, Mark
from .commands import EvidenceItems, MarkClaim, ProofClaim
from .errors import InvalidNameRequest, NameRefused
from .reasons import Refusal, Refused


def filed_at_of(value: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is Beijing time (G-1)."""
    if len(value) > 40:
        raise InvalidNameRequest("mark.filed_at must be an ISO 8601 date or date-time")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidNameRequest(f"mark.filed_at: not an ISO 8601 date-time: {value!r}") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=BEIJING)


def brand_claim(
    evidence: EvidenceItems | None,
    org_id: str,
    handle: str,
    mark: MarkClaim | None,
    proof: ProofClaim | None,
    who: str,
) -> tuple[Mark, BrandProof]:
    """The mark and its proof; NameRefused(evidence_not_found) when the proof is not an
    evidence item of `org_id`, InvalidNameRequest when the claim is incomplete."""
    if mark is None or proof is None:
        raise InvalidNameRequest(
            f"{who} needs mark {{kind, filed_at, registration_number}} "
            "and proof {item_id and/or sha256}"
        )
    text = handle if mark.text is None else mark.text
    claimed = Mark(mark.kind, text, filed_at_of(mark.filed_at))
    item_id = proof.item_id
    sha = proof.sha256.lower() if proof.sha256 else None
    if item_id is not None:
        item = None
        if evidence is not None and len(item_id) < 100:
            item = evidence.item(org_id, item_id)
        if item is None or (sha is not None and item.sha256 != sha):
            raise NameRefused(Refused(Refusal.EVIDENCE_NOT_FOUND, item_id))
        sha = item.sha256
    elif sha is not None:
        if len(sha) != 64 or evidence is None or not evidence.items_by_sha256(org_id, sha):
            raise NameRefused(Refused(Refusal.EVIDENCE_NOT_FOUND, sha))
    try:
        return claimed, BrandProof(mark.registration_number, item_id, sha)
    except ValueError as exc:
        raise InvalidNameRequest(f"proof: {exc}") from None
