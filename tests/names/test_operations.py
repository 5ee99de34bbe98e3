"""The registry's use cases without HTTP (names/operations.py, names/brand_claims.py,
names/errors.py): commands in, outcomes or names errors out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tests.names.conftest import E5_LEXICON, OPEN_POLICY
from tsa_server.clock.beijing import BEIJING
from tsa_server.names import MarkKind, Refusal, Refused, Registry, beijing, operations
from tsa_server.names.brand_claims import brand_claim, filed_at_of
from tsa_server.names.commands import ApplyCommand, Caller, DecisionCommand, MarkClaim, ProofClaim
from tsa_server.names.errors import (
    InvalidNameRequest,
    NameRefused,
    NoSuchName,
    NotPermitted,
    NotTimestamped,
    RefusalKind,
    refusal_kind,
)
from tsa_server.names.sql_store import SqlNameStore
from tsa_server.names.timestamping import NamesService, PinnedClock, TimestampingSink

OPENED = beijing(2012, 1, 1)


@dataclass
class _Item:
    sha256: str


class _Evidence:
    def __init__(self, items: dict[tuple[str, str], _Item]) -> None:
        self.items = items

    def item(self, org_id: str, item_id: str) -> _Item | None:
        return self.items.get((org_id, item_id))

    def items_by_sha256(self, org_id: str, sha256: str) -> list[_Item]:
        return [i for (org, _), i in self.items.items() if org == org_id and i.sha256 == sha256]


class _Issued:
    def __init__(self, token: bytes | None) -> None:
        self.token = token


@pytest.fixture
def names(tmp_path, clock, monkeypatch) -> NamesService:
    monkeypatch.setattr(
        "tsa_server.names.timestamping.gen_time_of", lambda token: beijing(2024, 1, 1)
    )

    async def stamp(digest: bytes, name: str) -> _Issued:
        return _Issued(b"token")

    store = SqlNameStore(tmp_path / "names.sqlite")
    sink = TimestampingSink(store, None)
    pinned = PinnedClock(clock)
    registry = Registry(OPEN_POLICY, lambda: E5_LEXICON, pinned, sink, store)
    return NamesService(registry, store, sink, pinned, stamp, frozenset({"op"}))


def test_refusal_kinds() -> None:
    assert refusal_kind(Refusal.NOT_PREFIX) is RefusalKind.INPUT
    assert refusal_kind(Refusal.NOT_OWNER) is RefusalKind.FORBIDDEN
    assert refusal_kind(Refusal.TAKEN) is RefusalKind.STATE
    refused = NameRefused(Refused(Refusal.TAKEN, "星辰"))
    assert str(refused) == "taken: 星辰" and refused.kind is RefusalKind.STATE


def test_brand_claims() -> None:
    assert filed_at_of("2010-01-01").tzinfo == BEIJING
    with pytest.raises(InvalidNameRequest, match="filed_at"):
        filed_at_of("yesterday")
    mark = MarkClaim(MarkKind("R"), "2010-01-01", "第1234567号")
    evidence = _Evidence({("a", "itm_1"): _Item("ab" * 32)})
    claimed, proof = brand_claim(evidence, "a", "小米", mark, ProofClaim("itm_1"), "group 1")
    assert claimed.text == "小米" and proof.evidence_sha256 == "ab" * 32
    for org, claim in (("b", ProofClaim("itm_1")), ("b", ProofClaim(sha256="ab" * 32))):
        with pytest.raises(NameRefused) as caught:
            brand_claim(evidence, org, "小米", mark, claim, "group 1")
        assert caught.value.refused.reason is Refusal.EVIDENCE_NOT_FOUND
    with pytest.raises(InvalidNameRequest, match="group 1 needs mark"):
        brand_claim(evidence, "a", "小米", None, ProofClaim("itm_1"), "group 1")
    with pytest.raises(InvalidNameRequest, match="proof"):
        brand_claim(evidence, "a", "小米", mark, ProofClaim(), "group 1")


def test_apply_change_and_decide(names: NamesService) -> None:
    a = Caller("a", "key-a", opened_at=OPENED)
    b = Caller("b", "key-b", opened_at=OPENED)

    async def flow() -> None:
        applied = await operations.apply(names, a, ApplyCommand("alpha", "alpha好"), None)
        assert applied.published and applied.done.event.kind.value == "approved"
        assert set(applied.earlier) == {"applied_seq"}
        with pytest.raises(NameRefused) as caught:
            await operations.apply(names, b, ApplyCommand("alpha", "alpha店"), None)
        assert caught.value.refused.reason is Refusal.TAKEN
        with pytest.raises(InvalidNameRequest):
            await operations.apply(names, b, ApplyCommand("beta", "beta店", group=3), None)
        with pytest.raises(NameRefused) as caught:
            await operations.change(names, b, "alpha", None, "x")
        assert caught.value.kind is RefusalKind.FORBIDDEN
        with pytest.raises(NoSuchName):
            await operations.change(names, b, "gamma", None, "x")
        with pytest.raises(NotPermitted):
            await operations.decide(names, a, "alpha", DecisionCommand())
        with pytest.raises(NotPermitted):  # an operator organisation, but no admin key
            await operations.decide(names, Caller("op", "k"), "alpha", DecisionCommand())
        with pytest.raises(InvalidNameRequest, match="unknown field"):
            await operations.decide(
                names,
                Caller("op", "k", admin=True),
                "alpha",
                DecisionCommand(metrics={"s": {"x": 1}}),
            )

    asyncio.run(flow())


def test_no_token_is_not_timestamped(names: NamesService) -> None:
    async def refuse(digest: bytes, name: str) -> _Issued:
        return _Issued(None)

    names._timestamp = refuse
    a = Caller("a", "key-a", opened_at=OPENED)
    with pytest.raises(NotTimestamped, match="could not be time-stamped"):
        asyncio.run(operations.apply(names, a, ApplyCommand("alpha", "alpha好"), None))
    assert names.store.last_seq() == 0
