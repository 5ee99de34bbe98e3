"""Fixtures and builders of the fee-layer tests: an injectable clock, items, wallets."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from tsa_server.fees import (
    DEFAULT_POLICY,
    EMPTY,
    DepositForm,
    Digests,
    EvidenceItem,
    Mode,
    PricingPolicy,
    Wallet,
    append,
    beijing,
    new_item,
    purchase,
)

MB = 2**20
bj = beijing  # a Beijing wall-clock instant, returned in UTC (all E rows are Beijing time)


class FakeClock:
    """`now()` under test control (G-1: rule code never reads the system clock)."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, t: datetime) -> datetime:
        self.now = t
        return t

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def item(
    item_id: str,
    size: int,
    certified_at: datetime,
    *,
    mode: Mode = Mode.STORED,
    policy: PricingPolicy = DEFAULT_POLICY,
    auto_renew: bool = True,
    stored_at: datetime | None = None,
) -> EvidenceItem:
    """A certified item whose digest is sha256(item_id) and serial is 'S-<id>'."""
    form = DepositForm(depositor="Alice", work_content="drawing", file_name=f"{item_id}.bin")
    return new_item(
        item_id,
        f"S{item_id}",
        mode,
        Digests(sha(item_id)),
        size,
        certified_at,
        form,
        stored_at=stored_at,
        auto_renew=auto_renew,
        policy=policy,
    )


def wallet(*lots: tuple[str, int, datetime], base: Wallet = EMPTY) -> Wallet:
    """A wallet holding the given (lot id, quantity, purchased at) lots."""
    w = base
    for lot_id, qty, at in lots:
        w = append(w, purchase(w, lot_id, qty, at))
    return w


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(bj(2024, 1, 1))


@pytest.fixture
def make_wallet() -> Callable[..., Wallet]:
    return wallet
