"""tsa_server.fees.terms against docs/spec/evidence.md table E.2 (E-1 .. E-14): storage expiry
from the anchor (S-4 .. S-6, A-1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.fees.conftest import MB, bj, item
from tsa_server.fees import CURRENT, LEGACY, SizeClass, annual_fee, epoch_of, size_class
from tsa_server.fees.policy import (
    DEFAULT_POLICY,
    LEGACY_SMALL_LITERAL_MONTHS,
    PricingPolicy,
    policy_from_mapping,
)
from tsa_server.fees.terms import initial_term


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# (row id, size, start = certified at, epoch, expiry_0 (39 m default),
#  expiry_0 under the literal 51 m (None: same), later expiries (expiry_1, expiry_2, ...))
E2 = [
    (
        "E-1",
        500 * MB,
        bj(2023, 11, 1),
        CURRENT,
        bj(2024, 11, 1),
        None,
        (bj(2025, 11, 1), bj(2026, 11, 1)),
    ),
    (
        "E-2",
        150 * MB,
        bj(2022, 11, 1),
        LEGACY,
        bj(2026, 2, 1),
        bj(2027, 2, 1),
        (bj(2027, 2, 1), bj(2028, 2, 1)),
    ),
    ("E-3", 150 * MB, bj(2023, 12, 1), CURRENT, bj(2026, 12, 1), None, (bj(2027, 12, 1),)),
    (
        "E-4",
        150 * MB,
        bj(2022, 11, 30, 23, 59, 59),
        LEGACY,
        bj(2026, 2, 28, 23, 59, 59),
        bj(2027, 2, 28, 23, 59, 59),
        (bj(2027, 2, 28, 23, 59, 59), bj(2028, 2, 29, 23, 59, 59)),
    ),
    ("E-5", 150 * MB, bj(2022, 12, 1), CURRENT, bj(2025, 12, 1), None, (bj(2026, 12, 1),)),
    (
        "E-6",
        150 * MB,
        utc(2022, 11, 30, 16, 30),
        CURRENT,
        bj(2025, 12, 1, 0, 30),
        None,
        (bj(2026, 12, 1, 0, 30),),
    ),
    (
        "E-7",
        500 * MB,
        bj(2022, 8, 31),
        LEGACY,
        bj(2023, 11, 30),
        None,
        (bj(2024, 11, 30), bj(2025, 11, 30)),
    ),
    (
        "E-8",
        150 * MB,
        bj(2024, 2, 29),
        CURRENT,
        bj(2027, 2, 28),
        None,
        (bj(2028, 2, 29), bj(2029, 2, 28)),
    ),
    ("E-9", 500 * MB, bj(2020, 2, 29), LEGACY, bj(2021, 5, 29), None, (bj(2022, 5, 29),)),
    (
        "E-10",
        150 * MB,
        bj(2022, 11, 30),
        LEGACY,
        bj(2026, 2, 28),
        bj(2027, 2, 28),
        (bj(2027, 2, 28), bj(2028, 2, 29)),
    ),
    ("E-11", 150 * MB, bj(2022, 5, 31), LEGACY, bj(2025, 8, 31), bj(2026, 8, 31), ()),
    (
        "E-12",
        500 * MB,
        utc(2023, 10, 31, 20),
        CURRENT,
        utc(2024, 10, 31, 20),
        None,
        (bj(2025, 11, 1, 4),),
    ),
    ("E-13", 200 * MB, bj(2024, 3, 10), CURRENT, bj(2027, 3, 10), None, ()),
    ("E-14", 200 * MB + 1, bj(2024, 3, 10), CURRENT, bj(2025, 3, 10), None, ()),
]
ROWS = [pytest.param(*row[1:], id=row[0]) for row in E2]


def literal_policy() -> PricingPolicy:
    """A-1: the seed's parenthetical formula taken literally (LEGACY SMALL = 51 months)."""
    data = {
        "versions": [
            {
                "epoch": "LEGACY",
                "small_free_months": LEGACY_SMALL_LITERAL_MONTHS,
                "large_free_months": 15,
            },
            {
                "epoch": "CURRENT",
                "effective_from": bj(2022, 12, 1),
                "small_free_months": 36,
                "large_free_months": 12,
            },
        ]
    }
    return policy_from_mapping(data)


@pytest.mark.parametrize(("size", "start", "epoch", "expiry0", "literal", "later"), ROWS)
def test_e2_default(
    size: int,
    start: datetime,
    epoch: str,
    expiry0: datetime,
    literal: datetime | None,
    later: tuple[datetime, ...],
) -> None:
    assert epoch_of(start) == epoch
    term = initial_term(size, start)
    assert term.expiry(0) == expiry0
    assert tuple(term.expiry(k + 1) for k in range(len(later))) == later
    it = item("x", size, start)
    assert it.epoch == epoch and it.storage is not None
    assert it.storage.expires_at == expiry0


@pytest.mark.parametrize(("size", "start", "epoch", "expiry0", "literal", "later"), ROWS)
def test_e2_literal_51_months(
    size: int,
    start: datetime,
    epoch: str,
    expiry0: datetime,
    literal: datetime | None,
    later: tuple[datetime, ...],
) -> None:
    """A-1: the literal reading changes only LEGACY SMALL rows (E-2, E-4, E-10, E-11)."""
    term = initial_term(size, start, policy=literal_policy())
    assert term.expiry(0) == (literal or expiry0)
    assert (literal is not None) == (epoch == LEGACY and size_class(size) is SizeClass.SMALL)


def test_e6_utc_date_differs_from_beijing_date() -> None:
    start = utc(2022, 11, 30, 16, 30)
    assert start.date().isoformat() == "2022-11-30"
    assert epoch_of(start) == CURRENT


def test_e12_time_of_day_kept() -> None:
    assert initial_term(500 * MB, utc(2023, 10, 31, 20)).expiry(0) == bj(2024, 11, 1, 4)


def test_e14_fee_2() -> None:
    assert annual_fee(200 * MB + 1) == 2
    assert initial_term(200 * MB + 1, bj(2024, 3, 10)).fee == 2


def test_s4_cutover_instant() -> None:
    """S-4 / A-3: 2022-11-30T16:00:00Z is CURRENT; one microsecond earlier is LEGACY."""
    cut = utc(2022, 11, 30, 16)
    assert epoch_of(cut) == CURRENT
    assert epoch_of(utc(2022, 11, 30, 15, 59, 59, 999999)) == LEGACY
    assert DEFAULT_POLICY.version_for(cut).small_free_months == 36
