"""The writer lease of a PostgreSQL log (issue 16, ledger/store/postgres_lease.py), with
real processes: a writer paused with SIGSTOP past its lease is replaced, and after
SIGCONT it writes nothing more; a killed writer's log is taken at once; a live writer
keeps its log; epochs (and so serials) never repeat across logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ledger.errors import LedgerWriteError
from ledger.store.base import NewEntry
from ledger.store.postgres import PostgresReader, PostgresStore

# A writer in a process of its own: claims the log, then appends one entry every 20 ms,
# printing each index; deposed, it prints why and exits 3.
WRITER = """
import sys, time
from ledger.errors import LedgerWriteError
from ledger.store.base import NewEntry
from ledger.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1], lease_seconds=float(sys.argv[2]))
state = store.claim_epoch()
print("epoch", state.epoch, flush=True)
index = state.next_index
while True:
    try:
        new = NewEntry(b"old%d" % index, 1, index, "sha256", b"\\0" * 32)
        store.append(state.epoch, index, [new])
    except LedgerWriteError as exc:
        print("DEPOSED", exc, flush=True)
        sys.exit(3)
    print("appended", index, flush=True)
    index += 1
    time.sleep(0.02)
"""


def entry(index: int, tag: bytes) -> NewEntry:
    return NewEntry(tag + b"%d" % index, 1, (1 << 100) + index, "sha256", b"\1" * 32)


def start_writer(url: str, lease: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=os.getcwd(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "epoch", first
    for _ in range(5):  # it is writing
        assert proc.stdout.readline().startswith("appended")
    return proc, int(first[1])


def test_a_writer_paused_past_its_lease_is_replaced_and_never_writes_again(
    postgres_url: str,
) -> None:
    proc, old_epoch = start_writer(postgres_url, lease=2.0)
    try:
        with pytest.raises(LedgerWriteError, match="in use by another writer"):
            PostgresStore(postgres_url)  # its lease is live
        os.kill(proc.pid, signal.SIGSTOP)
        paused_at = PostgresReader(postgres_url)
        size_when_paused = paused_at.size()
        time.sleep(2.6)  # past the lease; its session is still open
        replacement = PostgresStore(postgres_url)
        state = replacement.claim_epoch()
        assert state.epoch > old_epoch and state.next_index >= size_when_paused
        replacement.append(state.epoch, state.next_index, [entry(state.next_index, b"new")])
        os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 3 and "another writer has taken over" in out, out
        replacement.append(state.epoch, state.next_index + 1, [entry(state.next_index + 1, b"new")])
        tokens = [e.token for e in paused_at.entries(0)]
        assert len(tokens) == state.next_index + 2
        # everything from the takeover on is the replacement's
        assert all(t.startswith(b"new") for t in tokens[state.next_index :])
        assert all(t.startswith(b"old") for t in tokens[: state.next_index])
        replacement.close()
        paused_at.close()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()


def test_a_killed_writers_log_is_taken_at_once(postgres_url: str) -> None:
    proc, old_epoch = start_writer(postgres_url, lease=60.0)
    proc.kill()
    proc.wait()
    started = time.monotonic()
    while True:  # the server notices the closed connection within moments
        try:
            replacement = PostgresStore(postgres_url)
            break
        except LedgerWriteError:
            assert time.monotonic() - started < 10, "the dead writer's lease was not released"
            time.sleep(0.1)
    assert time.monotonic() - started < 10  # far less than the 60 s lease
    state = replacement.claim_epoch()
    assert state.epoch > old_epoch
    replacement.close()


def test_a_clean_close_releases_the_lease_and_epochs_are_unique(postgres_url: str) -> None:
    first = PostgresStore(postgres_url, lease_seconds=60.0)
    epochs = [first.claim_epoch().epoch]
    other = PostgresStore(postgres_url, log="node-2", lease_seconds=60.0)
    epochs.append(other.claim_epoch().epoch)
    first.close()
    again = PostgresStore(postgres_url, lease_seconds=60.0)  # no wait for the lease
    epochs.append(again.claim_epoch().epoch)
    assert len(set(epochs)) == 3 and epochs == sorted(epochs)
    again.close()
    other.close()


def test_a_deposed_writer_archives_no_checkpoint(postgres_url: str) -> None:
    from ledger.store.base import SignedCheckpoint

    old = PostgresStore(postgres_url)
    epoch = old.claim_epoch().epoch
    old.append(epoch, 0, [entry(0, b"old")])
    new = PostgresStore(postgres_url, exclusive=False)  # a forced take-over
    new.claim_epoch()
    checkpoint = SignedCheckpoint(1, old.root(1), old.chain_head(1), "note\n", 0)
    with pytest.raises(LedgerWriteError, match="another writer has taken over"):
        old.add_checkpoint(checkpoint)
    new.add_checkpoint(checkpoint)
    assert new.latest_checkpoint() == checkpoint
    new.close()
    old.close()


# A writer that stops (SIGSTOP, from the test) inside a write transaction, holding its
# log's row lock: only the server's idle-in-transaction limit can free the row.
STUCK_WRITER = """
import os, signal, sys
from ledger.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1], lease_seconds=1.0)
store.claim_epoch()
def stall(conn):
    conn.execute("SELECT 1 FROM ledger_logs WHERE log = 'tokens' FOR UPDATE")
    os.kill(os.getpid(), signal.SIGSTOP)
    conn.execute("SELECT 1")
try:
    store._write(stall, "stalled write")
except Exception as exc:
    print("REFUSED", exc, flush=True)
    sys.exit(3)
print("COMMITTED", flush=True)
"""


def test_a_writer_paused_inside_a_transaction_does_not_block_its_replacement(
    postgres_url: str,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_WRITER, postgres_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not open(f"/proc/{proc.pid}/stat").read().split()[2] == "T":
            assert time.monotonic() < deadline and proc.poll() is None, proc.poll()
            time.sleep(0.05)
        started = time.monotonic()
        replacement = PostgresStore(postgres_url)  # waits for the row, then takes the log
        replacement.claim_epoch()
        assert time.monotonic() - started < 10  # the lease and the idle limit are 1 s
        os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 3 and "REFUSED" in out, out
        replacement.close()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
