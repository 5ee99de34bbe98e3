"""Read paths of the SQLite ledger that serve public lookups: a genTime is found with one
step into the gen_time index (not a walk from index 0), and checkpoint sizes are read
without their notes."""

from __future__ import annotations

from ledger.store.base import NewEntry, SignedCheckpoint
from ledger.store.sqlite import SqliteReader, SqliteStore

SIZE = 20_000


def _ledger(path) -> None:
    store = SqliteStore(path)
    epoch = store.claim_epoch().epoch
    # Ten entries per millisecond: genTime repeats, as under load.
    entries = [NewEntry(b"t%d" % i, 1_000 + i // 10, i + 1, "sha256", None) for i in range(SIZE)]
    for first in range(0, SIZE, 5_000):
        store.append(epoch, first, entries[first : first + 5_000])
    for size in (10, 20):
        store.add_checkpoint(SignedCheckpoint(size, b"r" * 32, store.chain_head(size), "n"))
    store.close()


def _vm_steps(reader: SqliteReader, call) -> int:
    """SQLite virtual-machine work of `call`, in units of 100 instructions."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    reader._conn.set_progress_handler(count, 100)
    try:
        call()
    finally:
        reader._conn.set_progress_handler(None, 0)
    return steps


def test_index_at_time_is_the_first_index_and_costs_the_same_anywhere(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    _ledger(path)
    reader = SqliteReader(path)
    try:
        assert reader.index_at_time(0) == 0
        assert reader.index_at_time(1_000) == 0
        assert reader.index_at_time(1_001) == 10
        assert reader.index_at_time(1_000 + SIZE // 10 - 1) == SIZE - 10
        assert reader.index_at_time(1_000 + SIZE // 10) == SIZE  # none: the size
        near_start = _vm_steps(reader, lambda: reader.index_at_time(1_001))
        near_end = _vm_steps(reader, lambda: reader.index_at_time(1_000 + SIZE // 10 - 1))
        # MIN(idx) ... WHERE gen_time >= ? walked every entry before the answer.
        assert near_end <= near_start + 2, (near_start, near_end)
        assert reader.checkpoint_sizes() == [10, 20]
    finally:
        reader.close()
