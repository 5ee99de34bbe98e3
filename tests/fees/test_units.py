"""tsa_server.fees.units against docs/spec/evidence.md table E.1 (F-1 .. F-9): annual storage
fee and size class (S-2, S-3, G-4)."""

from __future__ import annotations

import pytest

from tests.fees.conftest import MB
from tsa_server.fees import STORAGE_BLOCK_BYTES, SizeClass, annual_fee, size_class
from tsa_server.fees.units import DECIMAL_BLOCK_BYTES, block_text, deposit_size

GiB = 2**30

# (row id, ((size in bytes, expected fee/yr, expected class), ...))
E1 = [
    ("F-1", ((150 * MB, 1, SizeClass.SMALL),)),
    ("F-2", ((500 * MB, 3, SizeClass.LARGE),)),
    ("F-3", ((209_715_200, 1, SizeClass.SMALL),)),
    ("F-4", ((209_715_201, 2, SizeClass.LARGE),)),
    ("F-5", ((419_430_400, 2, SizeClass.LARGE), (419_430_401, 3, SizeClass.LARGE))),
    ("F-6", ((0, 1, SizeClass.SMALL), (1, 1, SizeClass.SMALL))),
    ("F-7", ((200_000_001, 1, SizeClass.SMALL),)),
    ("F-8", ((1 * GiB, 6, SizeClass.LARGE),)),
    ("F-9", ((5 * GiB, 26, SizeClass.LARGE),)),
]


@pytest.mark.parametrize("cases", [c for _, c in E1], ids=[i for i, _ in E1])
def test_e1(cases: tuple[tuple[int, int, SizeClass], ...]) -> None:
    for size, fee, cls in cases:
        assert annual_fee(size) == fee
        assert size_class(size) is cls


def test_f7_decimal_reading_differs() -> None:
    """F-7 / A-17: under 10^6-byte MB the same size would be LARGE and cost 2."""
    assert size_class(200_000_001, DECIMAL_BLOCK_BYTES) is SizeClass.LARGE
    assert annual_fee(200_000_001, DECIMAL_BLOCK_BYTES) == 2
    assert annual_fee(400_000_001, DECIMAL_BLOCK_BYTES) == 3  # 2 under MiB
    assert annual_fee(400_000_001) == 2
    assert annual_fee(5 * GiB, DECIMAL_BLOCK_BYTES) == 27  # 26 under MiB


def test_g4_one_constant_shown_in_bytes() -> None:
    assert STORAGE_BLOCK_BYTES == 209_715_200
    assert block_text() == "200 MB = 209,715,200 bytes"


def test_g5_folder_size_is_the_sum() -> None:
    assert deposit_size([100 * MB, 100 * MB]) == 200 * MB
    assert annual_fee(deposit_size([100 * MB, 100 * MB, 1])) == 2


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_sizes_are_non_negative_integers(bad: object) -> None:
    with pytest.raises(ValueError):
        annual_fee(bad)  # type: ignore[arg-type]
