"""Fixtures of the handle-registry tests: an injectable clock, policies, lexicons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from tsa_server.names import (
    Lexicon,
    MemorySink,
    Policy,
    Registry,
    Shop,
    ShopState,
    beijing,
)
from tsa_server.names.config import BetaPhase


class FakeClock:
    """`now()` under test control (G-1: rule code never reads the system clock)."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, t: datetime) -> None:
        self.now = t

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


# E.5 word lists (Z-9, Z-10); brands are empty unless a test says otherwise.
E5_LEXICON = Lexicon(banned=frozenset({"国家级"}), restricted=frozenset({"旗舰", "官方", "店"}))

# H-15: the 2013 phase 1, as example data.
BETA_2013 = BetaPhase(
    name="phase-1",
    shop_opened_before=beijing(2013, 7, 31),
    applications_open=beijing(2013, 9, 25),
    applications_close=beijing(2013, 10, 8),
    publish_at=beijing(2013, 10, 14),
    ends_at=beijing(2013, 10, 21),
)
OPEN_POLICY = Policy()
BETA_POLICY = replace(Policy(), beta=BETA_2013)


def shop(
    shop_id: str,
    name: str,
    account: str | None = None,
    *,
    opened: datetime | None = None,
    state: ShopState = ShopState.ACTIVE,
) -> Shop:
    return Shop(shop_id, account or f"acct-{shop_id}", name, opened or beijing(2012, 1, 1), state)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(beijing(2024, 1, 1, 12))


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def make_registry(clock: FakeClock, sink: MemorySink) -> Callable[..., Registry]:
    def make(policy: Policy = OPEN_POLICY, lexicon: Lexicon = E5_LEXICON) -> Registry:
        return Registry(policy, lambda: lexicon, clock, sink)

    return make


@pytest.fixture
def registry(make_registry: Callable[..., Registry]) -> Registry:
    return make_registry()
