"""Faults caused for real against the real server (SoftHSM token, SQLite ledger, NTP over
UDP): the token store taken away, the ledger's disk full, the NTP server stopped, the
ledger database locked by another process, the ledger rolled back to an older copy.

For each: the right RFC 3161 rejection, /readyz 503 while faulty, no granted token
without its ledger entry (the ledger audited after), and recovery without a restart
where the fault goes away on its own.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.issuance.test_rollback import backup, serve_fails, wait_checkpoint
from tests.reliability.test_crash import check_ledger
from tests.support.ntp import NtpResponder
from tests.support.queries import failure_of, make_request, parse_response
from tests.support.tsa import Hsm, TsaServer, make_hsm

GRANTED = ("granted", "granted_with_mods")
SYSTEM_FAILURE = ("rejection", frozenset({"system_failure"}))
TIME_NOT_AVAILABLE = ("rejection", frozenset({"time_not_available"}))


class Client:
    """Posts distinct requests and keeps every granted token it receives."""

    def __init__(self, server: TsaServer):
        self.server = server
        self.tokens: list[bytes] = []
        self.count = 0

    def post(self) -> tuple[str, frozenset[str]]:
        self.count += 1
        status, _, body = self.server.post_query(make_request(b"fault %d" % self.count))
        assert status == 200, f"HTTP {status}: {body[:200]!r}"
        outcome = failure_of(body)
        if outcome[0] in GRANTED:
            self.tokens.append(parse_response(body)["time_stamp_token"].dump())
        return outcome

    def granted(self) -> bool:
        return self.post()[0] in GRANTED

    def ledger_holds_every_token(self) -> dict:
        """Every token this client received is in the ledger, which passes the audit."""
        vkey = self.server.get("/ledger/tokens/vkey")[2].decode().strip()
        figures = check_ledger(self.server, self.tokens, vkey)
        assert figures["missing"] == 0, f"{figures['missing']} granted tokens not in the ledger"
        assert figures["size"] >= len(self.tokens)
        return figures


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def unready(server: TsaServer) -> str:
    status, _, body = server.get("/readyz")
    assert status == 503, body
    return body.decode()


def ready(server: TsaServer) -> bool:
    return server.get("/readyz")[0] == 200


def ledger_size(server: TsaServer) -> int:
    conn = sqlite3.connect(f"file:{server.ledger_path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def own_token(tmp_path: Path, softhsm_conf: Path) -> Hsm:
    """A token of this test's own, so taking it away hurts no other test."""
    return make_hsm(tmp_path / "hsm", softhsm_conf)


@pytest.fixture
def servers() -> Iterator[list[TsaServer]]:
    started: list[TsaServer] = []
    yield started
    for server in started:
        server.stop()


def token_directory(softhsm_conf: Path, label: str) -> Path:
    """The SoftHSM directory of the token labelled `label` (its token.object names it)."""
    setting = next(
        line for line in softhsm_conf.read_text().splitlines() if line.startswith("directories.")
    )
    root = Path(setting.split("=", 1)[1].strip())
    for directory in root.iterdir():
        token_object = directory / "token.object"
        if token_object.exists() and label.encode() in token_object.read_bytes():
            return directory
    raise LookupError(f"no token directory for {label}")


# --- the token store -------------------------------------------------------------------


def away_from(directory: Path) -> Path:
    """Where a token directory is moved to: out of SoftHSM's token directory, which a
    starting SoftHSM scans whatever its subdirectories are called."""
    return directory.parents[2] / f"away-{directory.name}"


def take_token_away(server: TsaServer, client: Client, directory: Path) -> Path:
    """Move the token's directory away (chmod does not stop root; a moved directory
    does stop SoftHSM) and check the server answers systemFailure and is not ready."""
    assert client.granted()
    away = away_from(directory)
    directory.rename(away)
    size = ledger_size(server)
    for _ in range(3):
        assert client.post() == SYSTEM_FAILURE
    problems = unready(server)
    assert "signer" in problems or "issuance" in problems, problems
    assert ledger_size(server) == size, "a failed signature left an entry"
    assert server.process.poll() is None
    client.ledger_holds_every_token()
    print(f"\nfault token-store-renamed: systemFailure x3, readyz 503 {problems}")
    return away


def test_token_store_taken_away_gives_system_failure(own_token, servers, tmp_path, ntp) -> None:
    server = TsaServer(tmp_path / "srv", own_token, ntp.address)
    servers.append(server.start())
    client = Client(server)
    directory = token_directory(
        Path(own_token.pkcs11["softhsm_conf"]), own_token.pkcs11["token_label"]
    )
    away = take_token_away(server, client, directory)
    away.rename(directory)
    assert "Traceback" not in server.log().split("final checkpoint")[0]


def test_token_store_coming_back_is_used_without_restart(own_token, servers, tmp_path, ntp) -> None:
    server = TsaServer(tmp_path / "srv", own_token, ntp.address)
    servers.append(server.start())
    client = Client(server)
    directory = token_directory(
        Path(own_token.pkcs11["softhsm_conf"]), own_token.pkcs11["token_label"]
    )
    away = take_token_away(server, client, directory)
    away.rename(directory)
    wait_for(client.granted, timeout=15)
    wait_for(lambda: ready(server), timeout=10)
    client.ledger_holds_every_token()


def test_token_store_missing_at_start_is_one_clear_line(own_token, tmp_path) -> None:
    directory = token_directory(
        Path(own_token.pkcs11["softhsm_conf"]), own_token.pkcs11["token_label"]
    )
    server = TsaServer(tmp_path / "srv", own_token, "127.0.0.1:9")
    away = away_from(directory)
    directory.rename(away)
    try:
        stderr = serve_fails(server)
    finally:
        away.rename(directory)
    assert own_token.pkcs11["token_label"] in stderr and len(stderr.strip().splitlines()) == 1
    print(f"\nfault token-store-missing-at-start: exit 2: {stderr.strip()}")


# --- the ledger's disk full ------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem says ENOSPC."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_ledger_disk_full_gives_system_failure_and_recovers(servers, tmp_path, hsm, ntp) -> None:
    with small_filesystem(tmp_path / "disk", "1m") as disk:
        server = TsaServer(tmp_path / "srv", hsm, ntp.address, ledger={"path": str(disk / "l.db")})
        server.ledger_path = disk / "l.db"
        servers.append(server.start())
        client = Client(server)
        for _ in range(5):
            assert client.granted()
        filler = fill(disk)
        outcomes = []
        for _ in range(400):  # the WAL reuses its space for a while before it must grow
            outcomes.append(client.post())
            if outcomes[-1] == SYSTEM_FAILURE:
                break
        assert outcomes[-1] == SYSTEM_FAILURE, f"{set(outcomes)}\n{server.log()[-3000:]}"
        assert all(o[0] in GRANTED or o == SYSTEM_FAILURE for o in outcomes)
        problems = unready(server)
        assert "full" in problems, f"{problems}\n{server.log()[-3000:]}"
        # A smaller batch may still fit in what the failed one left: no outcome but
        # granted (with its entry) or systemFailure.
        later = client.post()
        assert later[0] in GRANTED or later == SYSTEM_FAILURE, later
        print(f"\nfault disk-full: {len(outcomes) - 1} more grants, then systemFailure; {problems}")
        assert server.process.poll() is None
        client.ledger_holds_every_token()
        filler.unlink()
        wait_for(client.granted)
        wait_for(lambda: ready(server))
        for _ in range(5):
            assert client.granted()
        client.ledger_holds_every_token()
        server.stop()


# --- the NTP server stopping -----------------------------------------------------------


def restart_on(responder: NtpResponder, port: int) -> None:
    """Start a stopped responder again on its old port (as a restarted daemon would)."""
    # NtpResponder.start binds port 0: bind the old port by hand.
    responder._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    responder._sock.bind(("127.0.0.1", port))
    responder._stop.clear()
    responder._thread = threading.Thread(target=responder._serve, daemon=True)
    responder._thread.start()


def test_ntp_server_stopping_gives_time_not_available_and_recovers(make_server, ntp) -> None:
    server = make_server(clock={"max_age_s": 2.0, "interval_s": 0.5, "timeout_s": 0.3}).start()
    client = Client(server)
    assert client.granted()
    port = ntp.port
    ntp.stop()  # the socket is closed: polls now get ICMP port unreachable
    stopped = time.monotonic()
    wait_for(lambda: client.post() == TIME_NOT_AVAILABLE, timeout=20)
    assert time.monotonic() - stopped >= 1.0, "refused before the last sample was old"
    problems = unready(server)
    assert "clock" in problems
    waited = time.monotonic() - stopped
    print(f"\nfault ntp-stopped: timeNotAvailable after {waited:.1f}s, readyz 503 {problems}")
    size = ledger_size(server)
    assert client.post() == TIME_NOT_AVAILABLE and ledger_size(server) == size
    restart_on(ntp, port)
    wait_for(client.granted)
    wait_for(lambda: ready(server))
    client.ledger_holds_every_token()


# --- the ledger database locked by another process -------------------------------------

LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def test_ledger_locked_by_another_process_gives_system_failure(make_server) -> None:
    server = make_server(ledger={"checkpoint_interval_s": 5.0}).start()
    client = Client(server)
    for _ in range(3):
        assert client.granted()
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(server.ledger_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout.readline().strip() == "locked"
        size = ledger_size(server)
        assert client.post() == SYSTEM_FAILURE  # after the store's busy timeout
        problems = unready(server)
        assert "locked" in problems
        print(f"\nfault ledger-locked: systemFailure, readyz 503 {problems}")
        assert ledger_size(server) == size
    finally:
        locker.stdin.write("\n")
        locker.stdin.close()
        locker.wait(10)
    assert locker.returncode == 0
    assert client.granted()
    assert ready(server)
    client.ledger_holds_every_token()


# --- the ledger rolled back ------------------------------------------------------------


def test_rolled_back_ledger_is_refused_until_the_right_one_returns(make_server, tmp_path) -> None:
    """test_rollback.py covers the refusal; here the refusal does no harm: putting the
    right ledger back lets the server start and issue, and nothing was lost."""
    server = make_server().start()
    client = Client(server)
    for _ in range(4):
        assert client.granted()
    wait_checkpoint(server, 4)
    old = tmp_path / "old.sqlite"
    backup(server.ledger_path, old)
    for _ in range(4):
        assert client.granted()
    wait_checkpoint(server, 8)
    server.stop()
    current = tmp_path / "current.sqlite"
    backup(server.ledger_path, current)
    for suffix in ("-wal", "-shm"):
        server.ledger_path.with_name(server.ledger_path.name + suffix).unlink(missing_ok=True)
    shutil.copy(old, server.ledger_path)
    stderr = serve_fails(server)
    assert "rolled back" in stderr and "refusing to issue" in stderr
    print(f"\nfault ledger-rolled-back: start refused: {stderr.strip()}")
    for suffix in ("-wal", "-shm"):
        server.ledger_path.with_name(server.ledger_path.name + suffix).unlink(missing_ok=True)
    shutil.copy(current, server.ledger_path)
    server.start()
    assert client.granted()
    client.ledger_holds_every_token()
