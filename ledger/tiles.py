"""C2SP tlog-tiles maths (docs/spec/ledger.md B.5): tile ids, paths, tile contents, entry bundles.

Tile (L, n) holds MTH(D[(n*256 + i) * 256**L : (n*256 + i + 1) * 256**L]) for
i = 0..width-1, i.e. the perfect nodes at tree level 8L with indices n*256 + i.
Paths are relative to the log prefix: `tile/<L>/<N>[.p/<W>]` and
`tile/entries/<N>[.p/<W>]`. `parse_tile_path` accepts only the canonical spelling,
so an HTTP handler can map TileError to 404/400 and never serve one tile twice.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ledger.errors import TileError
from ledger.hashing import HASH_SIZE, node_hash
from ledger.merkle import MAX_TREE_SIZE

#: Sizes per answer of a log's `checkpoints/` listing; `checkpoints/?after=<size>`
#: continues it. Bounded, so a log with years of checkpoints costs one page a request.
CHECKPOINT_PAGE = 10_000

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF
_MAX_INDEX_SEGMENTS = 7  # 2**64 has 20 decimal digits

_LEVEL = r"(0|[1-9][0-9]?)"
_INDEX = r"((?:x[0-9]{3}/)*[0-9]{3})"
_WIDTH = r"(?:\.p/([1-9][0-9]{0,2}))?"
_PATH_RE = re.compile(rf"tile/(?:entries|{_LEVEL})/{_INDEX}{_WIDTH}", re.ASCII)


@dataclass(frozen=True, order=True)
class TileId:
    """A hash tile (level >= 0) or, with `entries`, an entry bundle (level 0)."""

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_TILE_LEVEL or (self.entries and self.level):
            raise TileError(f"bad tile level {self.level}")
        if self.index < 0 or self.index > MAX_TREE_SIZE >> TILE_HEIGHT:
            raise TileError(f"bad tile index {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"bad tile width {self.width}")

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        kind = "entries" if self.entries else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{kind}/{encode_index(self.index)}{suffix}"

    @property
    def node_level(self) -> int:
        """The tree level of the hashes in this tile."""
        return self.level * TILE_HEIGHT

    def leaf_range(self) -> tuple[int, int]:
        """The leaves [start, end) that the hashes of this tile span."""
        span = 1 << self.node_level
        start = self.index * TILE_WIDTH * span
        return start, start + self.width * span


def encode_index(index: int) -> str:
    """Tile index as 3-digit path elements: 1234067 -> "x001/x234/067"."""
    if index < 0:
        raise TileError(f"negative tile index {index}")
    digits = f"{index:d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + groups[-1:])


def parse_tile_path(path: str) -> TileId:
    """Parse the canonical `tile/...` path of a tile or entry bundle; TileError otherwise."""
    match = _PATH_RE.fullmatch(path)
    if match is None:
        raise TileError(f"not a tile path: {path!r}")
    level, index_text, width = match.groups()
    segments = index_text.replace("x", "").split("/")
    if len(segments) > _MAX_INDEX_SEGMENTS:
        raise TileError(f"tile index too large: {path!r}")
    index = int("".join(segments))
    tile = TileId(
        level=int(level) if level is not None else 0,
        index=index,
        width=int(width) if width is not None else TILE_WIDTH,
        entries=level is None,
    )
    if tile.path != path:
        raise TileError(f"non-canonical tile path: {path!r}")
    return tile


def partial_width(size: int, level: int) -> int:
    """Width of the partial tile at `level` for a tree of `size` (0: there is none)."""
    return (size >> (TILE_HEIGHT * level)) % TILE_WIDTH


def tiles_for_size(size: int, *, entries: bool = False) -> Iterator[TileId]:
    """Every tile (or entry bundle) a tree of `size` leaves is published as, by level."""
    yield from tiles_to_publish(0, size, entries=entries)


def tiles_to_publish(old_size: int, new_size: int, *, entries: bool = False) -> Iterator[TileId]:
    """Tiles that are new or have grown when the tree grows from old_size to new_size."""
    if not 0 <= old_size <= new_size:
        raise TileError(f"tree cannot go from size {old_size} to {new_size}")
    for level in range(0, 1 if entries else MAX_TILE_LEVEL + 1):
        shift = TILE_HEIGHT * level
        old_count, new_count = old_size >> shift, new_size >> shift
        if new_count == 0:
            break
        if new_count == old_count:
            break  # nothing changed here, so nothing above either
        for index in range(old_count // TILE_WIDTH, new_count // TILE_WIDTH):
            yield TileId(level, index, entries=entries)
        width = new_count % TILE_WIDTH
        if width:
            yield TileId(level, new_count // TILE_WIDTH, width, entries=entries)


def tile_for_node(level: int, index: int, size: int) -> tuple[TileId, int, int]:
    """The tile of `size` holding perfect node (level, index), and the slice [i, j) of its
    hashes (in hash units) that the node folds."""
    if level < 0 or index < 0 or size < 0:
        raise TileError(f"no node ({level}, {index}) in a tree of size {size}")
    tile_level, sub = divmod(level, TILE_HEIGHT)
    first = index << sub
    tile_index, offset = divmod(first, TILE_WIDTH)
    full_tiles = (size >> (TILE_HEIGHT * tile_level)) // TILE_WIDTH
    width = TILE_WIDTH if tile_index < full_tiles else partial_width(size, tile_level)
    end = offset + (1 << sub)
    if tile_level > MAX_TILE_LEVEL or tile_index > full_tiles or end > width:
        raise TileError(f"node ({level}, {index}) is not complete in a tree of size {size}")
    return TileId(tile_level, tile_index, width), offset, end


def tile_node_reader(
    size: int, read_tile: Callable[[TileId], bytes]
) -> Callable[[int, int], bytes]:
    """A NodeReader for the tree of `size` that reads (and checks the length of) tiles."""

    def node(level: int, index: int) -> bytes:
        tile, start, end = tile_for_node(level, index, size)
        data = read_tile(tile)
        if len(data) != tile.width * HASH_SIZE:
            raise TileError(f"{tile.path} has {len(data)} bytes, expected {tile.width * 32}")
        hashes = [data[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(start, end)]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    return node


def tile_contents(tile: TileId, reader: Callable[[int, int], bytes]) -> bytes:
    """The bytes of a hash tile: `width` node hashes at tree level 8 * tile.level."""
    if tile.entries:
        raise TileError("an entry bundle holds entries, not hashes")
    first = tile.index * TILE_WIDTH
    return b"".join(reader(tile.node_level, first + i) for i in range(tile.width))


def encode_entry_bundle(entries: Iterable[bytes]) -> bytes:
    """u16be length || entry, for each entry; an entry may not exceed 65,535 bytes."""
    parts = []
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"entry {i} has {len(entry)} bytes, more than {MAX_ENTRY_SIZE}")
        parts.append(struct.pack(">H", len(entry)) + entry)
    if len(parts) > TILE_WIDTH:
        raise TileError(f"an entry bundle holds at most {TILE_WIDTH} entries")
    return b"".join(parts)


def decode_entry_bundle(data: bytes, count: int | None = None) -> list[bytes]:
    """Split an entry bundle; with `count`, also insist on exactly that many entries."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileError("entry bundle ends inside a length prefix")
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + length > len(data):
            raise TileError(f"entry {len(entries)} is truncated")
        entries.append(bytes(data[offset : offset + length]))
        offset += length
    if len(entries) > TILE_WIDTH or (count is not None and len(entries) != count):
        raise TileError(f"entry bundle holds {len(entries)} entries, expected {count}")
    return entries
