"""Typed refusal reasons of the handle registry.

Every refusal is one `Refusal` member; its value is a stable machine code for APIs
and the live "check while typing" endpoint. `Field` says which input is at fault.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Field(enum.StrEnum):
    """The input a refusal is about."""

    HANDLE = "handle"
    CUSTOM = "custom"
    SHOP_NAME = "shop_name"


class Refusal(enum.StrEnum):
    """Why a name or an operation is refused (rule id in the comment)."""

    # Names (H-1 .. H-9, G-7)
    BAD_CHARACTER = "bad_character"  # H-3, G-7
    TOO_SHORT = "too_short"  # H-2
    TOO_LONG = "too_long"  # H-2
    NOT_IN_SHOP_NAME = "not_in_shop_name"  # H-7
    NOT_PREFIX = "not_prefix"  # H-1
    BANNED_WORD = "banned_word"  # H-5
    RESTRICTED_ALONE = "restricted_alone"  # H-6
    ALL_RESTRICTED = "all_restricted"  # H-6
    BRAND_PROOF_REQUIRED = "brand_proof_required"  # H-9
    # Availability (H-4, H-12)
    TAKEN = "taken"
    PENDING_ELSEWHERE = "pending_elsewhere"
    CONTESTED = "contested"
    ON_HOLD = "on_hold"
    UNDER_REVIEW = "under_review"
    RESERVED = "reserved"
    # Applicants (H-11, H-14, H-15)
    SHOP_BLOCKED = "shop_blocked"
    SHOP_DELETED = "shop_deleted"
    SHOP_TOO_NEW = "shop_too_new"
    WINDOW_NOT_OPEN = "window_not_open"
    WINDOW_CLOSED = "window_closed"
    MARK_REQUIRED = "mark_required"
    MARK_NOT_LISTED = "mark_not_listed"
    MARK_TOO_RECENT = "mark_too_recent"
    MARK_MISMATCH = "mark_mismatch"
    PROOF_REQUIRED = "proof_required"  # H-9: a Group-1 application shows its proof
    EVIDENCE_NOT_FOUND = "evidence_not_found"  # the proof is not an item of the applicant
    BRAND_REVIEW_PENDING = "brand_review_pending"  # H-14: the operator reviews the proof
    NOT_BRAND_APPLICANT = "not_brand_applicant"
    ALREADY_APPLIED = "already_applied"
    ALREADY_HOLDS = "already_holds"
    # Changes (H-10)
    CHANGE_FROZEN = "change_frozen"
    QUOTA_EXHAUSTED = "quota_exhausted"
    TOO_SOON = "too_soon"
    NOT_HOLDER = "not_holder"
    NOT_OWNER = "not_owner"
    # Holds and review (H-12, A-16)
    NOTHING_TO_RECLAIM = "nothing_to_reclaim"
    HOLD_EXPIRED = "hold_expired"
    NOT_UNDER_REVIEW = "not_under_review"
    # Disputes (H-8, H-15, H-16)
    NOTHING_PENDING = "nothing_pending"
    NOT_YET_PUBLISHED = "not_yet_published"
    METRICS_MISSING = "metrics_missing"
    NOT_CONTESTED = "not_contested"
    NOT_CONTENDER = "not_contender"
    LEADER_CANNOT_OBJECT = "leader_cannot_object"
    OBJECTION_CLOSED = "objection_closed"
    OBJECTION_PERIOD_OPEN = "objection_period_open"
    OBJECTIONS_PENDING = "objections_pending"
    MANUAL_REVIEW_REQUIRED = "manual_review_required"
    # Trademark complaints (H-13)
    NOT_HELD = "not_held"  # a complaint is against a handle somebody holds
    REGISTERED_MARK_REQUIRED = "registered_mark_required"  # a TM application is not enough
    SELF_COMPLAINT = "self_complaint"
    HOLDER_HAS_MARK = "holder_has_mark"  # the holder's own mark was certified (H-14)
    COMPLAINT_PENDING = "complaint_pending"  # one open complaint per complainant
    NO_COMPLAINT = "no_complaint"


@dataclass(frozen=True)
class Refused:
    """A refused operation: the reason, the field at fault if any, and a detail text."""

    reason: Refusal
    detail: str = ""
    field: Field | None = None

    @property
    def ok(self) -> bool:
        return False
