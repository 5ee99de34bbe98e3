"""Storage terms, fees, credit lots and renewals: the pure rules of docs/spec/evidence.md
parts A, B, C, F and REC-1 .. REC-4, REC-6, REC-10.

Nothing here does I/O or reads the system clock: every function takes its instants
(aware datetimes, stored in UTC, month arithmetic on the Beijing wall clock through
`tsa_server.clock.beijing.add_months`, G-1 .. G-3) and returns values the storage
layer persists. Modules, one job each:

- units       G-4/G-5/S-2/S-3: STORAGE_BLOCK_BYTES, size class, annual fee
- policy      REC-1 versioned pricing policy (LEGACY/CURRENT), conf/pricing.toml, A-1
- terms       S-1/S-4..S-6/S-9: scope, anchored storage terms, expiry_k, cost preview
- deposit     P-7/T-9: deposit metadata; the evidence time is genTime only
- items       REC-1 evidence item, storage status, filing status (P-6)
- entries     G-6/REC-1 ledger entries, idempotency keys, canonical records
- wallet      P-1..P-8/G-6: lots, holds and the balance as a fold over the entries
- lots        P-1..P-8: the operations on credit lots (purchase, reserve, consume, ...)
- renewals    S-7/S-10/R-1..R-8/R-15: the scheduler's tick, catch-up, purge
- lifecycle   S-8..S-10/R-9..R-14: delete original, re-upload, reinstate
- forecast    REC-3: 12-month obligations against the balance
- reminders   REC-3/P-8/S-10: expiry, purge and lot-lapse reminders, low balance
- notices     REC-10 notice kinds (webhooks), the Outcome of one rule application
- access      S-10/A-6/REC-4: what is downloadable; certificate content
- kit         REC-6: evidence kit layout and manifest
- quotas      REC-10: monthly quotas and rate limits (roles and keys: evidence/accounts.py)
"""

from tsa_server.clock.beijing import BEIJING, add_months, beijing

from .access import Artefact, certificate_fields, downloadable, require_download
from .deposit import DepositForm, parse_deposit_form
from .entries import Draw, EntryKind, LedgerEntry, PeriodRef, from_record, to_record
from .errors import (
    ConfirmationRequired,
    DigestMismatch,
    DuplicatePeriod,
    FeeError,
    FieldError,
    GraceExpired,
    InsufficientCredits,
    InvalidEntry,
    LedgerConflict,
    NotAllowed,
    OriginalLocked,
    PricingError,
    QuotaExceeded,
    StateError,
)
from .forecast import Forecast, MonthLine, Obligation, forecast
from .items import (
    Digests,
    EvidenceItem,
    FilingStatus,
    Storage,
    StorageStatus,
    filing_status,
    new_item,
    purge_at,
)
from .kit import KitPlan, plan_kit
from .lifecycle import delete_original, reinstate, reupload, set_auto_renew
from .lots import (
    EMPTY,
    Journal,
    Lot,
    Wallet,
    adjust,
    append,
    consume,
    debit_storage,
    fold,
    lapse_due,
    lot_for_consumption,
    purchase,
    refund,
    release,
    reserve,
)
from .notices import Notice, NoticeKind, Outcome, certified_notice
from .policy import (
    CURRENT,
    DEFAULT_POLICY,
    LEGACY,
    PolicyVersion,
    PricingPolicy,
    epoch_of,
    free_months,
    load_policy,
)
from .reminders import reminders_due
from .renewals import Decision, Due, TickResult, renewal_decision, tick
from .terms import CERTIFICATION_UNITS, Mode, StorageTerm, expiry_k, preview, storage_applies
from .units import STORAGE_BLOCK_BYTES, SizeClass, annual_fee, size_class

__all__ = [
    "BEIJING",
    "CERTIFICATION_UNITS",
    "CURRENT",
    "DEFAULT_POLICY",
    "EMPTY",
    "LEGACY",
    "STORAGE_BLOCK_BYTES",
    "Artefact",
    "ConfirmationRequired",
    "Decision",
    "DepositForm",
    "DigestMismatch",
    "Digests",
    "Draw",
    "Due",
    "DuplicatePeriod",
    "EntryKind",
    "EvidenceItem",
    "FeeError",
    "FieldError",
    "FilingStatus",
    "Forecast",
    "GraceExpired",
    "InsufficientCredits",
    "InvalidEntry",
    "Journal",
    "KitPlan",
    "LedgerConflict",
    "LedgerEntry",
    "Lot",
    "Mode",
    "MonthLine",
    "NotAllowed",
    "Notice",
    "NoticeKind",
    "Obligation",
    "OriginalLocked",
    "Outcome",
    "PeriodRef",
    "PolicyVersion",
    "PricingError",
    "PricingPolicy",
    "QuotaExceeded",
    "SizeClass",
    "StateError",
    "Storage",
    "StorageStatus",
    "StorageTerm",
    "TickResult",
    "Wallet",
    "add_months",
    "adjust",
    "annual_fee",
    "append",
    "beijing",
    "certificate_fields",
    "certified_notice",
    "consume",
    "debit_storage",
    "delete_original",
    "downloadable",
    "epoch_of",
    "expiry_k",
    "filing_status",
    "fold",
    "forecast",
    "free_months",
    "from_record",
    "lapse_due",
    "load_policy",
    "lot_for_consumption",
    "new_item",
    "parse_deposit_form",
    "plan_kit",
    "preview",
    "purchase",
    "purge_at",
    "refund",
    "reinstate",
    "release",
    "reminders_due",
    "renewal_decision",
    "require_download",
    "reserve",
    "reupload",
    "set_auto_renew",
    "size_class",
    "storage_applies",
    "tick",
    "to_record",
]
