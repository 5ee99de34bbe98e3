"""Reminders before storage expiry, purge and lot lapse, and the low-balance alert
(REC-3, S-10, P-8).

`reminders_due(wallet, items, now)` returns the reminders due at `now`: for each target
instant (an expiry, a purge, a lot lapse) still ahead, the latest reminder whose time has
come (T-30, T-7, T-1 days; 30 and 7 days for lots). After downtime this yields the one
reminder that is still meaningful rather than a burst of stale ones; each notice key is
sent once by the delivery layer, so calling this every minute is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from tsa_server.clock.beijing import require_aware

from .forecast import forecast
from .items import EvidenceItem, StorageStatus, purge_at
from .lots import Wallet
from .notices import Notice, NoticeKind
from .policy import DEFAULT_POLICY, PricingPolicy


def latest_offset(target: datetime, days: Sequence[int], now: datetime) -> int | None:
    """The smallest offset d (days) with `target - d <= now < target`, if any."""
    if now >= target:
        return None
    due = [d for d in days if target - timedelta(days=d) <= now]
    return min(due) if due else None


def reminders_due(
    wallet: Wallet,
    items: Sequence[EvidenceItem],
    now: datetime,
    policy: PricingPolicy = DEFAULT_POLICY,
) -> tuple[Notice, ...]:
    """REC-3 reminders and alerts due at `now`, in target order."""
    now = require_aware(now, "now")
    fc = forecast(wallet, items, now, policy)
    covered = {(o.item_id, o.term, o.period): o.covered for o in fc.obligations}
    out: list[Notice] = []
    for item in items:
        s = item.storage
        if s is None or not item.storage_applies:
            continue
        if s.status is StorageStatus.ACTIVE:
            t = s.expires_at
            d = latest_offset(t, policy.expiry_reminder_days, now)
            if d is not None:
                ok = covered.get((item.item_id, s.term.number, s.period + 1))
                detail = "auto-renew off: the original will be locked" if not s.auto_renew else ""
                out.append(
                    Notice(
                        f"expiry-reminder/{item.item_id}/{s.term.number}/{s.period}/{d}d",
                        NoticeKind.EXPIRY_REMINDER,
                        now,
                        item.item_id,
                        t,
                        s.term.fee,
                        ok if s.auto_renew else None,
                        detail,
                    )
                )
        p = purge_at(item, policy)
        if p is not None and (d := latest_offset(p, policy.purge_notice_days, now)) is not None:
            out.append(
                Notice(
                    f"purge-reminder/{item.item_id}/{s.term.number}/{d}d",
                    NoticeKind.PURGE_REMINDER,
                    now,
                    item.item_id,
                    p,
                    s.term.fee,
                    wallet.balance(now) >= s.term.fee,
                    "reinstate before purge",
                )
            )
    for lot in wallet.lots.values():
        if (
            lot.available
            and (d := latest_offset(lot.lapses_at, policy.lot_reminder_days, now)) is not None
        ):
            out.append(
                Notice(
                    f"lot-reminder/{lot.lot_id}/{d}d",
                    NoticeKind.LOT_LAPSE_REMINDER,
                    now,
                    lot.lot_id,
                    lot.lapses_at,
                    lot.available,
                )
            )
    if fc.low_balance and fc.first_uncovered is not None:
        o = fc.first_uncovered
        window = now + timedelta(days=policy.low_balance_days)
        short = sum(x.fee for x in fc.obligations if not x.covered and x.due_at < window)
        out.append(
            Notice(
                f"low-balance/{o.item_id}/{o.term}/{o.period}",
                NoticeKind.LOW_BALANCE,
                now,
                o.item_id,
                o.due_at,
                short,
                False,
                f"{short} credit(s) short within {policy.low_balance_days} days",
            )
        )
    return tuple(sorted(out, key=lambda n: (n.target or now, n.key)))
