"""ledger.tiles: B.5 path vectors, strict path parsing, tile sets, tile contents and
entry bundles."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import TileError
from ledger.hashing import leaf_hash
from ledger.merkle import MemoryTree, root_from_reader
from ledger.proofs import consistency_proof, inclusion_proof
from ledger.tiles import (
    TileId,
    decode_entry_bundle,
    encode_entry_bundle,
    encode_index,
    parse_tile_path,
    partial_width,
    tile_contents,
    tile_node_reader,
    tiles_for_size,
    tiles_to_publish,
)


@pytest.mark.parametrize(
    ("index", "text"),
    [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_b5_index_encoding(index: int, text: str) -> None:
    assert encode_index(index) == text


@pytest.mark.parametrize(
    ("path", "tile"),
    [
        ("tile/0/000", TileId(0, 0)),
        ("tile/0/x001/x234/067", TileId(0, 1234067)),
        ("tile/1/x001/000.p/17", TileId(1, 1000, 17)),
        ("tile/63/000.p/1", TileId(63, 0, 1)),
        ("tile/entries/x001/000", TileId(0, 1000, entries=True)),
        ("tile/entries/042.p/255", TileId(0, 42, 255, entries=True)),
    ],
)
def test_parse_tile_path(path: str, tile: TileId) -> None:
    assert parse_tile_path(path) == tile
    assert tile.path == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile/0/0",
        "tile/0/0000",
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/x000/001",  # non-canonical spelling of 1
        "tile/0/001/002",
        "tile/0/x001",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/012",
        "tile/0/000.p/",
        "tile/0/000/",
        "/tile/0/000",
        "tile/entries/000.p/-1",
        "tile/entry/000",
        "tile/1/x999/x999/x999/x999/x999/x999/x999/999",
        "tile/0/\u0661\u0662\u0663",  # Arabic-Indic digits
        "tile/0/000\n",
        "tile/0/../000",
    ],
)
def test_parse_tile_path_rejects_junk(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


def test_tlog_tiles_example_size_70000() -> None:
    tiles = list(tiles_for_size(70000))
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if not t.is_partial]) == 273
    assert [t.width for t in level0 if t.is_partial] == [112]
    assert [(t.level, t.index, t.width) for t in tiles if t.level > 0] == [
        (1, 0, 256),
        (1, 1, 17),
        (2, 0, 1),
    ]
    assert len(list(tiles_for_size(70000, entries=True))) == 274
    assert [(t.level, t.width) for t in tiles_for_size(256)] == [(0, 256), (1, 1)]
    assert list(tiles_for_size(0)) == []
    assert (partial_width(70000, 0), partial_width(70000, 1), partial_width(70000, 2)) == (
        112,
        17,
        1,
    )


SMALL = 1 << 18


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.integers(0, 70000), st.integers(0, 1 << 40)),
    st.one_of(st.integers(0, 70000), st.integers(0, 1 << 20)),
)
def test_tiles_to_publish_is_exactly_what_changed(old: int, growth: int) -> None:
    new = old + growth
    published = list(tiles_to_publish(old, new))
    assert len(published) == len(set(published))
    for tile in published:
        _, end = tile.leaf_range()
        assert old < end <= new  # the tile gained leaves in this step
    if new < SMALL:
        assert set(published) == set(tiles_for_size(new)) - set(tiles_for_size(old))


def test_tiles_to_publish_rejects_shrinking() -> None:
    with pytest.raises(TileError):
        list(tiles_to_publish(5, 4))


@pytest.fixture(scope="module")
def big_tree() -> MemoryTree:
    return MemoryTree(
        leaf_hash(hashlib.sha256(i.to_bytes(4, "big")).digest()) for i in range(70001)
    )


def test_tile_contents_and_tile_backed_reader(big_tree: MemoryTree) -> None:
    size = 70000
    store = {t: tile_contents(t, big_tree) for t in tiles_for_size(size)}
    assert all(len(data) == 32 * t.width for t, data in store.items())
    assert store[TileId(0, 0)][:32] == big_tree(0, 0)
    assert store[TileId(1, 0)][32:64] == big_tree(8, 1)
    assert store[TileId(2, 0, 1)] == big_tree(16, 0)
    reader = tile_node_reader(size, store.__getitem__)
    assert root_from_reader(size, reader) == big_tree.root(size)
    for index in (0, 255, 256, 65535, 65536, 69999):
        assert inclusion_proof(index, size, reader) == inclusion_proof(index, size, big_tree)
    for old in (1, 256, 4097, 65536, 69999, 70000):
        assert consistency_proof(old, size, reader) == consistency_proof(old, size, big_tree)


def test_tile_backed_reader_refuses_missing_nodes(big_tree: MemoryTree) -> None:
    store = {t: tile_contents(t, big_tree) for t in tiles_for_size(300)}
    reader = tile_node_reader(300, store.__getitem__)
    with pytest.raises(TileError):
        reader(0, 300)
    with pytest.raises(TileError):
        reader(6, 4)  # leaves 256..319 are not all in a tree of 300
    for level, index in [(-1, 0), (0, -1), (64 * 8, 0)]:
        with pytest.raises(TileError):
            reader(level, index)
    short = tile_node_reader(300, lambda tile: b"\x00" * 31)
    with pytest.raises(TileError):
        short(0, 0)


def test_entry_bundle_round_trip() -> None:
    entries = [b"", b"a", b"\x00" * 300, b"x" * 65535]
    data = encode_entry_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(data, count=4) == entries


@pytest.mark.parametrize(
    "data",
    [b"\x00", b"\x00\x05abcd", b"\x00\x01a\x00", encode_entry_bundle([b"a"] * 2) + b"\x00"],
)
def test_entry_bundle_rejects_truncation(data: bytes) -> None:
    with pytest.raises(TileError):
        decode_entry_bundle(data)


def test_entry_bundle_limits() -> None:
    with pytest.raises(TileError):
        encode_entry_bundle([b"x" * 65536])
    with pytest.raises(TileError):
        encode_entry_bundle([b""] * 257)
    with pytest.raises(TileError):
        decode_entry_bundle(encode_entry_bundle([b"a", b"b"]), count=3)


def test_tile_id_validation() -> None:
    for bad in [(64, 0), (-1, 0), (0, -1), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(TileError):
            TileId(*bad)
    with pytest.raises(TileError):
        TileId(1, 0, entries=True)
    with pytest.raises(TileError):
        tile_contents(TileId(0, 0, entries=True), lambda level, index: b"")
