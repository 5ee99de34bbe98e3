"""A `HandleRecord` as JSON and back: the form the SQLite store keeps each record in
(names/sqlite_store.py) and `tsa names show` prints. Instants are UTC text, fractions
their exact "a/b" text, so a record reads back equal to what was written."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any

from tsa_server.clock.beijing import Interval, parse_utc_text, utc_text

from .applicants import BrandProof, Group, Mark, MarkKind
from .disputes import Metrics, Ranking, Standing
from .holds import HandleHold, HoldKind
from .quota import ChangeHistory
from .store import (
    Application,
    Contest,
    HandleRecord,
    HandleStatus,
    Holding,
    Objection,
)
from .trademark import Complaint


def _t(t: datetime | None) -> str | None:
    return None if t is None else utc_text(t)


def _pt(s: str | None) -> datetime | None:
    return None if s is None else parse_utc_text(s)


def _frac(f: Fraction) -> str:
    return str(Fraction(f))


def _metrics(m: Metrics) -> dict[str, Any]:
    return {
        "search_rate": _frac(m.search_rate),
        "usage_days": m.usage_days,
        "wangwang": m.wangwang,
        "repeat_rate": _frac(m.repeat_rate),
        "transactions": _frac(m.transactions),
        "star_level": m.star_level,
        "continuous_days": m.continuous_days,
    }


def _metrics_from(d: dict[str, Any]) -> Metrics:
    return Metrics(
        Fraction(d["search_rate"]),
        d["usage_days"],
        d["wangwang"],
        Fraction(d["repeat_rate"]),
        Fraction(d["transactions"]),
        d["star_level"],
        d["continuous_days"],
    )


def _mark_json(m: Mark) -> dict[str, Any]:
    return {"kind": m.kind.value, "text": m.text, "filed_at": _t(m.filed_at), "listed": m.listed}


def _mark_from(m: dict[str, Any] | None) -> Mark | None:
    if m is None:
        return None
    return Mark(MarkKind(m["kind"]), m["text"], parse_utc_text(m["filed_at"]), m["listed"])


def _brand_json(a: Application) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.mark is not None:
        out["mark"] = _mark_json(a.mark)
    if a.proof is not None:
        out["proof"] = a.proof.to_json()
    return out


def _brand_from(a: dict[str, Any]) -> tuple[Mark | None, BrandProof | None]:
    p = a.get("proof")
    return _mark_from(a.get("mark")), None if p is None else BrandProof(**p)


def _complaint_json(c: Complaint) -> dict[str, Any]:
    return {
        "shop_id": c.shop_id,
        "account_id": c.account_id,
        "handle": c.handle,
        "shop_name": c.shop_name,
        "mark": _mark_json(c.mark),
        "proof": c.proof.to_json(),
        "filed_at": _t(c.filed_at),
        "statement": c.statement,
    }


def _complaint_from(c: dict[str, Any]) -> Complaint:
    mark = _mark_from(c["mark"])
    assert mark is not None
    return Complaint(
        c["shop_id"],
        c["account_id"],
        c["handle"],
        c["shop_name"],
        mark,
        BrandProof(**c["proof"]),
        parse_utc_text(c["filed_at"]),
        c["statement"],
    )


def record_to_json(r: HandleRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"key": r.key, "handle": r.handle, "status": r.status.value}
    out["applications"] = [
        {
            "shop_id": a.shop_id,
            "account_id": a.account_id,
            "handle": a.handle,
            "shop_name": a.shop_name,
            "group": int(a.group),
            "applied_at": _t(a.applied_at),
            **_brand_json(a),
        }
        for a in r.applications
    ]
    c = r.contest
    out["contest"] = (
        None
        if c is None
        else {
            "window": [_t(c.window.start), _t(c.window.end)],
            "standings": [
                {
                    "contender": s.contender,
                    "score": _frac(s.score),
                    "metrics": _metrics(s.metrics),
                    "rank": s.rank,
                }
                for s in c.ranking.standings
            ],
            "leader": c.ranking.leader,
            "decided_by": c.ranking.decided_by,
            "objections": [
                {
                    "shop_id": o.shop_id,
                    "account_id": o.account_id,
                    "at": _t(o.at),
                    "statement": o.statement,
                }
                for o in c.objections
            ],
        }
    )
    h = r.holding
    out["holding"] = (
        None
        if h is None
        else {
            "shop_id": h.shop_id,
            "account_id": h.account_id,
            "handle": h.handle,
            "custom": h.custom,
            "approved_at": _t(h.history.approved_at),
            "changes": [_t(t) for t in h.history.changes],
            **({"mark": _mark_json(h.mark)} if h.mark is not None else {}),
        }
    )
    d = r.hold
    out["hold"] = (
        None
        if d is None
        else {
            "kind": d.kind.value,
            "former_account": d.former_account,
            "former_shop": d.former_shop,
            "since": _t(d.since),
            "available_at": _t(d.available_at),
        }
    )
    if r.complaints:  # H-13 (absent when none: older rows read the same)
        out["complaints"] = [_complaint_json(c) for c in r.complaints]
    return out


def record_from_json(o: dict[str, Any]) -> HandleRecord:
    apps = tuple(
        Application(
            a["shop_id"],
            a["account_id"],
            a["handle"],
            a["shop_name"],
            Group(a["group"]),
            parse_utc_text(a["applied_at"]),
            *_brand_from(a),
        )
        for a in o["applications"]
    )
    contest = None
    if (c := o["contest"]) is not None:
        ranking = Ranking(
            tuple(
                Standing(
                    s["contender"], Fraction(s["score"]), _metrics_from(s["metrics"]), s["rank"]
                )
                for s in c["standings"]
            ),
            c["leader"],
            c["decided_by"],
        )
        objections = tuple(
            Objection(x["shop_id"], x["account_id"], parse_utc_text(x["at"]), x["statement"])
            for x in c["objections"]
        )
        window = Interval(parse_utc_text(c["window"][0]), parse_utc_text(c["window"][1]))
        contest = Contest(window, ranking, objections)
    holding = None
    if (h := o["holding"]) is not None:
        history = ChangeHistory(
            parse_utc_text(h["approved_at"]), tuple(parse_utc_text(t) for t in h["changes"])
        )
        holding = Holding(
            h["shop_id"],
            h["account_id"],
            h["handle"],
            h["custom"],
            history,
            _mark_from(h.get("mark")),
        )
    hold = None
    if (d := o["hold"]) is not None:
        hold = HandleHold(
            HoldKind(d["kind"]),
            d["former_account"],
            d["former_shop"],
            parse_utc_text(d["since"]),
            _pt(d["available_at"]),
        )
    complaints = tuple(_complaint_from(c) for c in o.get("complaints", ()))
    return HandleRecord(
        o["key"], o["handle"], HandleStatus(o["status"]), apps, contest, holding, hold, complaints
    )
