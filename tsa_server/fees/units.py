"""Storage block, size classes and the annual storage fee (G-4, G-5, S-2, S-3, A-17).

`STORAGE_BLOCK_BYTES` is the one definition of the seed's "200MB" (G-4: MiB, 2**20
bytes); nothing else in the code base may re-derive it. All arithmetic is on integers.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

STORAGE_BLOCK_BYTES = 200 * 2**20
"""G-4 / A-2: "200MB" = 200 MiB = 209,715,200 bytes (customer-favourable reading)."""

DECIMAL_BLOCK_BYTES = 200 * 10**6
"""The rejected decimal reading of "200MB", kept only so tests can show where it differs."""


class SizeClass(enum.StrEnum):
    """S-2: SMALL if size <= one block ("小于等于 200MB"), else LARGE."""

    SMALL = "SMALL"
    LARGE = "LARGE"


def _size(size_bytes: int) -> int:
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
        raise ValueError(f"size must be a non-negative int of bytes, got {size_bytes!r}")
    return size_bytes


def _block(block_bytes: int) -> int:
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes <= 0:
        raise ValueError(f"block must be a positive int of bytes, got {block_bytes!r}")
    return block_bytes


def size_class(size_bytes: int, block_bytes: int = STORAGE_BLOCK_BYTES) -> SizeClass:
    """S-2: exactly one block is SMALL; one byte more is LARGE (F-3, F-4)."""
    return SizeClass.SMALL if _size(size_bytes) <= _block(block_bytes) else SizeClass.LARGE


def annual_fee(size_bytes: int, block_bytes: int = STORAGE_BLOCK_BYTES) -> int:
    """S-3: credits per 12-month period = max(1, ceil(size / block)), integers only.

    SMALL -> 1 (a 0-byte file too, F-6); LARGE -> every started block counts ("不足 200MB
    的按 200M 计算"): 500 MiB -> 3 (F-2), 1 GiB -> 6 (F-8).
    """
    return max(1, -(-_size(size_bytes) // _block(block_bytes)))


def deposit_size(file_sizes: Iterable[int]) -> int:
    """G-5: the size of a folder deposited as one item is the sum of its files' lengths."""
    return sum(_size(s) for s in file_sizes)


def block_text(block_bytes: int = STORAGE_BLOCK_BYTES) -> str:
    """G-4: the block in exact bytes for the pricing page: "200 MB = 209,715,200 bytes"."""
    block = _block(block_bytes)
    mib, rest = divmod(block, 2**20)
    label = f"{mib} MB" if not rest else f"{block:,} bytes"
    return f"{label} = {block:,} bytes" if not rest else label
