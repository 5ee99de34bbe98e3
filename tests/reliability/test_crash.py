"""Crash consistency: SIGKILL the real server (SoftHSM, SQLite) at random moments under
concurrent load, some kills aimed at a checkpoint publication in progress, restart it,
and check after every restart that nothing a client received was lost.

Replay a run with TSA_CRASH_SEED=<the printed seed>.
"""

from __future__ import annotations

import http.client
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from asn1crypto import cms, tsp

from tests.support.queries import make_request, parse_response
from tests.support.tsa import TsaServer

AUDIT = [str(Path(sys.executable).with_name("tsa-ledger")), "audit", "--quiet"]
KILLS = 12  # a third at random, a third after a burst, a third at a publication
CLIENTS = 4
GRANTED = ("granted", "granted_with_mods")


class LoadClient:
    """CLIENTS threads posting distinct requests; every granted token received is kept.
    A request whose reply never arrived (the server died) is simply forgotten."""

    def __init__(self, server: TsaServer, cycle: int):
        self.server = server
        self.cycle = cycle
        self.stop = threading.Event()
        self.tokens: list[bytes] = []
        self.errors = 0
        self.failures: list[BaseException] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> LoadClient:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a load client hung"
        if self.failures:  # e.g. a complete 200 reply that is not a TimeStampResp
            raise self.failures[0]

    def _run(self, n: int) -> None:
        try:
            self._load(n)
        except BaseException as exc:  # noqa: B036 - handed to the test thread
            self.failures.append(exc)

    def _load(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            der = make_request(b"crash %d client %d request %d" % (self.cycle, n, i))
            try:
                status, _, body = self.server.post_query(der)
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                time.sleep(0.01)
                continue
            if status != 200:
                continue
            reply = parse_response(body)
            if reply["status"]["status"].native in GRANTED:
                with self.lock:
                    self.tokens.append(reply["time_stamp_token"].dump())


def tst_info(token: bytes) -> tsp.TSTInfo:
    return cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed


def publication_dirs(server: TsaServer) -> list[Path]:
    root = server.workdir / "var" / "ledger" / "tokens"
    return [root, root / "checkpoints"]


def temporary_files(server: TsaServer) -> dict[Path, tuple[int, int]]:
    """write_durably's temporary files with their (inode, mtime): one that appears or
    changes was being written (a publication in progress), one left over stays put."""
    found = {}
    for directory in publication_dirs(server):
        try:
            names = [name for name in os.listdir(directory) if name.endswith(".tmp")]
        except FileNotFoundError:
            continue
        for name in names:
            try:
                info = os.stat(directory / name)
            except FileNotFoundError:
                continue
            found[directory / name] = (info.st_ino, info.st_mtime_ns)
    return found


def publishing(server: TsaServer, before: dict[Path, tuple[int, int]]) -> bool:
    """A checkpoint file is being written now (or was, when the server died)."""
    return any(before.get(path) != state for path, state in temporary_files(server).items())


def published_size(server: TsaServer) -> int:
    path = publication_dirs(server)[0] / "checkpoint"
    return int(path.read_text().split("\n")[1]) if path.exists() else -1


def archived_size(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COALESCE(MAX(size), -1) FROM checkpoints").fetchone()[0]


def kill(server: TsaServer) -> None:
    server.process.kill()
    server.process.wait(10)


def kill_at(server: TsaServer, rng: random.Random, mode: str, before: dict) -> None:
    """Kill the server under load: at a random moment, just after a burst, or while a
    checkpoint file is being written (its temporary file appeared or changed)."""
    if mode == "random":
        time.sleep(rng.uniform(0.2, 1.5))
    elif mode == "burst":
        time.sleep(rng.uniform(0.3, 0.8))
        time.sleep(rng.choice((0.0, 0.001, 0.005, 0.02, 0.05, 0.1)))
    else:  # "publication": wait for write_durably's temporary file, then kill at once
        time.sleep(rng.uniform(0.1, 0.4))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if publishing(server, before):
                break
    kill(server)


def audit_ok(vkey: str, path: Path, *options: str) -> None:
    result = subprocess.run(
        [*AUDIT, *options, "--vkey", vkey, str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"audit of {path.name}:\n{result.stdout}{result.stderr}"


def check_ledger(server: TsaServer, received: list[bytes], vkey: str) -> dict:
    conn = sqlite3.connect(f"file:{server.ledger_path}?mode=ro", uri=True)
    try:
        stored = dict(conn.execute("SELECT token, serial FROM entries"))
        missing = [token for token in received if token not in stored]
        for token in received:
            if token in stored:
                serial = format(tst_info(token)["serial_number"].native, "040x")
                assert stored[token] == serial, "a token's row holds another serial"
        rows = conn.execute("SELECT idx, gen_time, serial FROM entries ORDER BY idx").fetchall()
        archived = archived_size(conn)
        checkpoints = conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    finally:
        conn.close()
    assert [row[0] for row in rows] == list(range(len(rows))), "indices not contiguous"
    serials = [row[2] for row in rows]
    assert len(set(serials)) == len(serials), "a serial appears twice in the ledger"
    times = [row[1] for row in rows]
    decreasing = [i for i in range(1, len(times)) if times[i] < times[i - 1]]
    assert not decreasing, f"genTime decreases at indices {decreasing[:5]}"
    audit_ok(vkey, server.ledger_path)
    return {
        "size": len(rows),
        "missing": len(missing),
        "archived": archived,
        "checkpoints": checkpoints,
    }


@pytest.mark.slow
def test_sigkill_under_load_loses_nothing(make_server, record_property) -> None:
    seed = int(os.environ.get("TSA_CRASH_SEED") or time.time_ns() % 2**32)
    print(f"\ncrash test seed: TSA_CRASH_SEED={seed}")
    record_property("seed", seed)
    rng = random.Random(seed)
    started = time.monotonic()
    server = make_server(ledger={"checkpoint_interval_s": 0.1}).start()
    vkey = server.get("/ledger/tokens/vkey")[2].decode().strip()
    ops_vkey = server.get("/ledger/ops/vkey")[2].decode().strip()
    received: list[bytes] = []
    missing = mid_publication = file_behind = 0
    checkpoints = 0
    modes = ["random", "burst", "publication"] * (KILLS // 3 + 1)
    rng.shuffle(modes)
    for cycle, mode in enumerate(modes[:KILLS]):
        before = temporary_files(server)
        with LoadClient(server, cycle) as load:
            kill_at(server, rng, mode, before)
        received.extend(load.tokens)
        left_over = publishing(server, before)
        mid_publication += left_over
        conn = sqlite3.connect(f"file:{server.ledger_path}?mode=ro", uri=True)
        archived = archived_size(conn)
        conn.close()
        file_behind += archived > published_size(server)
        try:
            server.start()
        except RuntimeError as exc:  # the tripwire (or anything else) refused to start
            pytest.fail(f"seed {seed}, kill {cycle + 1} ({mode}): no restart: {exc}")
        figures = check_ledger(server, received, vkey)
        missing += figures["missing"]
        assert figures["missing"] == 0, (
            f"seed {seed}, kill {cycle + 1} ({mode}): {figures['missing']} of "
            f"{len(received)} received tokens are not in the ledger"
        )
        checkpoints = figures["checkpoints"]
        audit_ok(ops_vkey, server.workdir / "ops.sqlite", "--not-tokens")
        status, _, body = server.post_query(make_request(b"after kill %d" % cycle))
        reply = parse_response(body)
        assert status == 200 and reply["status"]["status"].native in GRANTED, (
            f"seed {seed}, kill {cycle + 1} ({mode}): no token after the restart: "
            f"{reply['status'].native}"
        )
        received.append(reply["time_stamp_token"].dump())
        print(
            f"kill {cycle + 1:2d} {mode:11s} mid-publication={left_over!s:5s} "
            f"received={len(received)} ledger={figures['size']} "
            f"archived-checkpoint={figures['archived']}"
        )
    serials = [tst_info(token)["serial_number"].native for token in received]
    assert len(set(serials)) == len(serials), "a serial was issued twice"
    assert len(set(received)) == len(received)
    server.stop()
    summary = (
        f"crash summary: seed={seed} kills survived={KILLS} tokens received={len(received)} "
        f"missing from ledger={missing} checkpoints seen={checkpoints} "
        f"kills during a publication={mid_publication} "
        f"archive ahead of checkpoint file={file_behind} "
        f"runtime={time.monotonic() - started:.1f}s"
    )
    print(summary)
    record_property("summary", summary)
    assert received and missing == 0
    assert mid_publication >= 1, "no kill landed while a checkpoint was being written"
