"""`tsa-ledger audit` and `tsa audit` draw one progress bar on stderr when stderr is a
terminal, whatever the number of worker processes (-j N: the workers are forked with a
copy of the bar and must not draw it again), and none when stderr is a pipe or a file.

The ledger is a few thousand entries written straight into a SQLite store: the bar, not
the findings, is under test (its entries are not real tokens, so the audit fails: 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.store.base import NewEntry
from ledger.store.sqlite import SqliteStore
from tests.support.tsa import Hsm

BIN = Path(sys.executable).parent
SIZE = 3000


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "ledger.sqlite"
    store = SqliteStore(path)
    epoch = store.claim_epoch().epoch
    store.append(
        epoch,
        0,
        [
            NewEntry(b"\x30\x03tok%d" % i, 1_700_000_000_000 + i, 10_000 + i, "sha256", bytes(32))
            for i in range(SIZE)
        ],
    )
    store.close()
    return path


def on_a_terminal(argv: list[str]) -> tuple[int, bytes]:
    """Run argv with stderr on a pseudo-terminal (stdout a pipe): exit status and all
    that reached the terminal."""
    master, slave = os.openpty()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return process.wait(60), seen


def commands(ledger: Path, hsm: Hsm) -> list[list[str]]:
    return [
        [str(BIN / "tsa-ledger"), "audit", "-j", "2", str(ledger)],
        [str(BIN / "tsa"), "audit", "-j", "2", "--ca", str(hsm.ca_file), str(ledger)],
    ]


def test_one_bar_on_a_terminal(ledger: Path, hsm: Hsm) -> None:
    for argv in commands(ledger, hsm):
        code, seen = on_a_terminal(argv)
        assert code == 2, seen  # not real tokens: the bar is what is under test
        # one bar: redrawn in place with \r, ended by one new line, never started again
        assert seen.count(b"  0%|") == 1, seen
        assert seen.count(b"\n") == 1 and seen.endswith(b"\n"), seen
        assert f"{SIZE}/{SIZE}".encode() in seen, seen
        code, seen = on_a_terminal([*argv[:2], "--quiet", *argv[2:]])
        assert code == 2 and seen == b"", seen


def test_no_bar_in_a_pipe(ledger: Path, hsm: Hsm) -> None:
    for argv in commands(ledger, hsm):
        done = subprocess.run(argv, capture_output=True, timeout=60)
        assert done.returncode == 2 and done.stderr == b"", done.stderr
        assert done.stdout.decode().splitlines()[-1].startswith("FAILED: token log, 3000 entries")
