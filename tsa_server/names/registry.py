"""The in-process handle registry service (part D of docs/spec/evidence.md).

`Registry` = `RegistryCore` (state, clock, events, live check) + `Lifecycle`
(change, release, reclaim, review) + `Complaints` (trademark complaints, H-13) + the
operations here: apply, approve/publish, the contest view, object and decide.
Refusals are `Refused` values and change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tsa_server.clock.beijing import Interval

from .applicants import BrandProof, Group, Mark, Shop, check_eligibility
from .complaints import Complaints
from .core import BLOCKING, Done, Result
from .disputes import ContenderScore, Metrics, Standing, objection_window, rank, score
from .events import EventKind, event_time
from .quota import ChangeHistory
from .reasons import Refusal, Refused
from .store import Application, Contest, HandleRecord, HandleStatus, Holding, Objection
from .validation import check_shop_name

__all__ = ["ContestView", "Done", "Registry", "Result"]


@dataclass(frozen=True)
class ContestView:
    """H-16: what a contender sees during the objection period."""

    handle: str
    own: Standing
    leader: Standing | None  # None: tied at the top, manual review
    decided_by: str | None
    window: Interval


def standing_data(s: Standing) -> dict[str, Any]:
    """A contender's standing as JSON-ready data (events and the API use the same)."""
    m = s.metrics
    return {
        "shop": s.contender,
        "rank": s.rank,
        "score": str(s.score),
        "metrics": {
            "search_rate": str(m.search_rate),
            "usage_days": m.usage_days,
            "continuous_days": m.continuous_days,
            "wangwang": m.wangwang,
            "repeat_rate": str(m.repeat_rate),
            "transactions": str(m.transactions),
            "star_level": m.star_level,
        },
    }


class Registry(Complaints):
    """The trade-name (字号) registry service."""

    def contest_view(self, handle: str, shop_id: str) -> ContestView | Refused:
        """H-16: a contender's own metrics beside the provisional leader's, while the
        objection period runs."""
        now = self._now()
        rec = self.lookup(handle, now)
        if rec is None or rec.contest is None:
            return Refused(Refusal.NOT_CONTESTED, handle)
        ranking = rec.contest.ranking
        own = ranking.standing(shop_id)
        if own is None:
            return Refused(Refusal.NOT_CONTENDER, shop_id)
        if not rec.contest.window.contains(now):
            return Refused(Refusal.OBJECTION_CLOSED, event_time(rec.contest.window.end))
        leader = ranking.standing(ranking.leader) if ranking.leader else None
        return ContestView(rec.handle, own, leader, ranking.decided_by, rec.contest.window)

    # ---------------------------------------------------------------- apply
    def apply(
        self,
        shop: Shop,
        handle: str,
        *,
        group: Group = Group.PUBLIC,
        mark: Mark | None = None,
        shop_name: str | None = None,
        proof: BrandProof | None = None,
    ) -> Result:
        """Apply for `handle` for `shop`. Group 2 uses the shop's current name (H-7);
        Group 1 may give the shop name the mark will head (`shop_name`) and the proof
        the operator reviews (`proof`, see `certify`)."""
        if (shop_name is not None or proof is not None) and group is not Group.BRAND:
            raise ValueError("only a Group-1 (brand) application has a shop name or proof")
        now = self._now()
        refused = check_eligibility(shop, group, mark, handle, now, self.policy)
        if refused:
            return refused
        c = check_shop_name(
            handle,
            shop_name or shop.name,
            self._lexicon(),
            self.policy,
            brand_proof=group is Group.BRAND,
        )
        if c.refused:
            return c.refused
        refused = self._bound(shop.shop_id)
        if refused:
            return refused
        key = self.key(handle)
        rec = self.lookup(handle, now)
        if rec is not None and rec.status in BLOCKING:
            return Refused(BLOCKING[rec.status], rec.handle)
        assert c.shop_name is not None
        app = Application(
            shop.shop_id,
            shop.account_id,
            c.handle.text,
            c.shop_name.text,
            group,
            now,
            mark if group is Group.BRAND else None,
            proof,
        )
        apps = (*rec.applications, app) if rec else (app,)
        new = HandleRecord(key, rec.handle if rec else app.handle, HandleStatus.PENDING, apps)
        data: dict[str, Any] = {
            "shop": shop.shop_id,
            "account": shop.account_id,
            "group": int(group),
            "shop_name": app.shop_name,
            "applicants": len(apps),
        }
        if mark is not None:
            data["mark"] = {
                "kind": mark.kind.value,
                "text": mark.text,
                "filed_at": event_time(mark.filed_at),
            }
        if proof is not None:
            data["proof"] = proof.to_json()
        return self._emit(EventKind.APPLIED, now, key, new.handle, data, put=[new])

    # ------------------------------------------------------ approve / publish
    def _shop_name_taken(self, rec: HandleRecord, app: Application) -> bool:
        """H-15: is the applicant's shop name also used by another applicant or holder?"""
        mine = self.key(app.shop_name)
        for other in self.store.records():
            names = [a.shop_name for a in other.applications if a.shop_id != app.shop_id]
            if other.holding is not None and other.status is HandleStatus.ACTIVE:
                names.append(other.holding.shop_name)
            if any(self.key(n) == mine for n in names):
                return True
        return False

    def _too_early(self, pool: tuple[Application, ...], now: datetime) -> Refused | None:
        beta = self.policy.beta
        if beta is None or now >= beta.publish_at:
            return None
        if any(a.group is Group.PUBLIC and a.applied_at < beta.publish_at for a in pool):
            return Refused(Refusal.NOT_YET_PUBLISHED, event_time(beta.publish_at))
        return None

    def approve(
        self,
        handle: str,
        metrics: Mapping[str, Metrics] | None = None,
        *,
        brand_review: bool = False,
    ) -> Result:
        """Publish the result for a pending handle: approved at once when it has a single
        applicant with a unique shop name (H-15), contested otherwise (scores from
        `metrics`, keyed by shop id). Mark holders (Group 1) take precedence (H-13).
        With `brand_review` (the served registry) a handle with a Group-1 application
        stays pending: its proof is reviewed through `certify` / `reject_brand` (H-14)."""
        now = self._now()
        rec = self.lookup(handle, now)
        if rec is None or rec.status is not HandleStatus.PENDING:
            return Refused(Refusal.NOTHING_PENDING, handle)
        brand = tuple(a for a in rec.applications if a.group is Group.BRAND)
        if brand_review and brand:
            return Refused(Refusal.BRAND_REVIEW_PENDING, ",".join(a.shop_id for a in brand))
        pool = brand or rec.applications
        refused = self._too_early(pool, now)
        if refused:
            return refused
        dropped = [a.shop_id for a in rec.applications if a not in pool]
        if len(pool) == 1 and not self._shop_name_taken(rec, pool[0]):
            holding = self._holding_for(pool[0], now)
            new = HandleRecord(rec.key, holding.handle, HandleStatus.ACTIVE, holding=holding)
            data: dict[str, Any] = {
                "shop": holding.shop_id,
                "account": holding.account_id,
                "shop_name": holding.shop_name,
                "dropped": dropped,
            }
            return self._emit(EventKind.APPROVED, now, rec.key, new.handle, data, put=[new])
        metrics = metrics or {}
        # a sole applicant is contested only for a duplicate shop name: metrics optional
        missing = [a.shop_id for a in pool if a.shop_id not in metrics] if len(pool) > 1 else []
        if missing:
            return Refused(Refusal.METRICS_MISSING, ",".join(missing))
        dp = self.policy.disputes
        entries = [
            ContenderScore(a.shop_id, score(m, dp), m)
            for a in pool
            for m in [metrics.get(a.shop_id, Metrics())]
        ]
        contest = Contest(objection_window(now, dp), rank(entries, dp))
        new = HandleRecord(rec.key, rec.handle, HandleStatus.CONTESTED, pool, contest)
        data = {
            "standings": [standing_data(s) for s in contest.ranking.standings],
            "leader": contest.ranking.leader,
            "decided_by": contest.ranking.decided_by,
            "objections_until": event_time(contest.window.end),
            "dropped": dropped,
        }
        return self._emit(EventKind.CONTESTED, now, rec.key, rec.handle, data, put=[new])

    def publish(self, metrics: Mapping[str, Metrics] | None = None) -> list[Result]:
        """H-15 publication day: `approve` every pending handle (in key order)."""
        pending = sorted(
            (r.key, r.handle) for r in self.store.records() if r.status is HandleStatus.PENDING
        )
        return [self.approve(handle, metrics) for _, handle in pending]

    def _holding_for(self, app: Application, now: datetime) -> Holding:
        return Holding(
            app.shop_id,
            app.account_id,
            app.handle,
            app.shop_name[len(app.handle) :],
            ChangeHistory(now),
            app.mark if app.group is Group.BRAND else None,
        )

    # ------------------------------------------------------- object / decide
    def object(self, handle: str, shop_id: str, account_id: str, statement: str = "") -> Result:
        """H-15: a contender (not the leader) objects within `[publish, publish + 7 d)`."""
        now = self._now()
        rec = self.lookup(handle, now)
        if rec is None or rec.contest is None:
            return Refused(Refusal.NOT_CONTESTED, handle)
        app = rec.application(shop_id)
        if app is None:
            return Refused(Refusal.NOT_CONTENDER, shop_id)
        if app.account_id != account_id:
            return Refused(Refusal.NOT_OWNER, "the shop belongs to another account")
        if not rec.contest.window.contains(now):
            return Refused(Refusal.OBJECTION_CLOSED, event_time(rec.contest.window.end))
        if rec.contest.ranking.leader == shop_id:
            return Refused(Refusal.LEADER_CANNOT_OBJECT, shop_id)
        objection = Objection(shop_id, account_id, now, statement)
        contest = replace(rec.contest, objections=(*rec.contest.objections, objection))
        data = {"shop": shop_id, "account": account_id, "statement": statement}
        return self._emit(
            EventKind.OBJECTED, now, rec.key, rec.handle, data, put=[replace(rec, contest=contest)]
        )

    def decide(self, handle: str, *, winner: str | None = None, note: str = "") -> Result:
        """H-15/H-16: at the end of the objection period the provisional leader's handle
        takes effect. A tie (no leader) or any objection needs a reviewer's `winner`."""
        now = self._now()
        rec = self.lookup(handle, now)
        if rec is None or rec.contest is None:
            return Refused(Refusal.NOT_CONTESTED, handle)
        contest = rec.contest
        if now < contest.window.end:
            return Refused(Refusal.OBJECTION_PERIOD_OPEN, event_time(contest.window.end))
        by = "review"
        if winner is None:
            if contest.ranking.leader is None:
                return Refused(Refusal.MANUAL_REVIEW_REQUIRED, "tied after every tie-break")
            if contest.objections:
                return Refused(Refusal.OBJECTIONS_PENDING, str(len(contest.objections)))
            winner, by = contest.ranking.leader, "ranking"
        app = rec.application(winner)
        if app is None:
            return Refused(Refusal.NOT_CONTENDER, winner)
        holding = self._holding_for(app, now)
        new = HandleRecord(rec.key, holding.handle, HandleStatus.ACTIVE, holding=holding)
        data = {
            "shop": winner,
            "account": app.account_id,
            "by": by,
            "note": note,
            "shop_name": holding.shop_name,
            "objections": len(contest.objections),
        }
        return self._emit(EventKind.DECIDED, now, rec.key, new.handle, data, put=[new])

    # ------------------------------------------------- brand review (H-9, H-14)
    def _brand_application(
        self, handle: str, shop_id: str
    ) -> tuple[HandleRecord, Application] | Refused:
        rec = self.lookup(handle)
        if rec is None or rec.status is not HandleStatus.PENDING:
            return Refused(Refusal.NOTHING_PENDING, handle)
        app = rec.application(shop_id)
        if app is None or app.group is not Group.BRAND:
            return Refused(Refusal.NOT_BRAND_APPLICANT, shop_id)
        return rec, app

    def certify(self, handle: str, shop_id: str, note: str = "") -> Result:
        """H-14: the operator accepts a Group-1 applicant's proof; the handle is the
        applicant's at once (every other application for it is dropped)."""
        now = self._now()
        found = self._brand_application(handle, shop_id)
        if isinstance(found, Refused):
            return found
        rec, app = found
        holding = self._holding_for(app, now)
        new = HandleRecord(rec.key, holding.handle, HandleStatus.ACTIVE, holding=holding)
        data: dict[str, Any] = {
            "shop": app.shop_id,
            "account": app.account_id,
            "shop_name": holding.shop_name,
            "proof": app.proof.to_json() if app.proof else None,
            "note": note,
            "dropped": [a.shop_id for a in rec.applications if a is not app],
        }
        return self._emit(EventKind.BRAND_CERTIFIED, now, rec.key, new.handle, data, put=[new])

    def reject_brand(self, handle: str, shop_id: str, note: str = "") -> Result:
        """H-14: the operator refuses a Group-1 applicant's proof; its application is
        withdrawn and the others stay pending."""
        now = self._now()
        found = self._brand_application(handle, shop_id)
        if isinstance(found, Refused):
            return found
        rec, app = found
        rest = tuple(a for a in rec.applications if a is not app)
        data = {
            "shop": app.shop_id,
            "account": app.account_id,
            "note": note,
            "applicants": len(rest),
        }
        if not rest:
            return self._emit(
                EventKind.BRAND_REJECTED, now, rec.key, rec.handle, data, delete=[rec.key]
            )
        new = replace(rec, applications=rest)
        return self._emit(EventKind.BRAND_REJECTED, now, rec.key, rec.handle, data, put=[new])
