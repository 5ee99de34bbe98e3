"""The committer (issuance/commit.py) when a commit's outcome is unknown: the store
raised, but the entries are durable (the connection died while COMMIT was under way, as
in a PostgreSQL failover). It must see that they landed, answer them as committed and go
on from the log's true end; a commit that did not land stays failed.

The fault is injected with a wrapper around a real SQLite store that commits and then
raises: the one way to make this instant happen in a test (a real failover at that
exact moment cannot be timed)."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from ledger.store.base import NewEntry
from ledger.store.sqlite import SqliteStore
from tsa_server.issuance.commit import Batch, Committed, Committer


class CommitsThenFails:
    """A real store whose next append commits and then raises, or only raises."""

    def __init__(self, store: SqliteStore, *, lands: bool) -> None:
        self.store, self.lands, self.armed = store, lands, True

    def append(self, epoch: int, first: int, entries: list[NewEntry]) -> None:
        if self.armed:
            self.armed = False
            if self.lands:
                self.store.append(epoch, first, entries)
            raise ConnectionError("server closed the connection during COMMIT")
        self.store.append(epoch, first, entries)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def batch(first: int, count: int) -> Batch:
    entries = [
        NewEntry(b"token %d" % i, 1_000, (1 << 120) + i, "sha256", b"\1" * 32)
        for i in range(first, first + count)
    ]
    return Batch([object()] * count, first, 1_000, [], [], [], [], True, entries)  # type: ignore[list-item]


@pytest.mark.parametrize("lands", [True, False])
def test_an_unknown_outcome_is_settled_by_the_log(tmp_path: Path, lands: bool) -> None:
    real = SqliteStore(tmp_path / "ledger.sqlite")
    state = real.claim_epoch()
    reports: queue.Queue[Committed] = queue.Queue()
    committer = Committer(CommitsThenFails(real, lands=lands), state.epoch, 0, reports.put)  # type: ignore[arg-type]
    try:
        committer.put([batch(0, 3)])
        first = reports.get(timeout=10)
        if lands:
            assert len(first.committed) == 1 and first.durable_index == 3
            committer.put([batch(3, 2)])  # the sequence goes on from the log's end
            second = reports.get(timeout=10)
            assert len(second.committed) == 1 and second.durable_index == 5
            assert real.size() == 5
        else:
            assert first.committed == [] and first.error is not None
            assert first.durable_index == 0 and real.size() == 0
    finally:
        committer.close()
        real.close()
