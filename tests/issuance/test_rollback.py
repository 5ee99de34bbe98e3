"""The rollback tripwire (docs/spec/ledger.md L-13): a ledger restored from an older copy, or one
that differs from what was checkpointed, makes the server refuse to issue."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time

from tests.support.queries import make_request
from tests.support.tsa import TSA_BIN, TsaServer


def latest_checkpoint_size(server: TsaServer) -> int:
    status, _, body = server.get("/ledger/tokens/checkpoint")
    return int(body.decode().split("\n")[1]) if status == 200 else -1


def wait_checkpoint(server: TsaServer, size: int) -> None:
    deadline = time.monotonic() + 10
    while latest_checkpoint_size(server) < size:
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.05)


def backup(src, dst) -> None:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


def serve_fails(server: TsaServer) -> str:
    result = subprocess.run(
        [TSA_BIN, "serve", "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_restored_older_ledger_refuses_to_issue(make_server, tmp_path) -> None:
    server = make_server().start()
    for i in range(5):
        server.post_query(make_request(b"%d" % i))
    wait_checkpoint(server, 5)
    old_copy = tmp_path / "old.sqlite"
    backup(server.ledger_path, old_copy)
    for i in range(5):
        server.post_query(make_request(b"later %d" % i))
    wait_checkpoint(server, 10)
    server.stop()
    # The operator "restores from backup": the whole database file, its own checkpoint
    # archive included. Only the checkpoint published outside the database tells.
    for suffix in ("-wal", "-shm"):
        (server.ledger_path.parent / (server.ledger_path.name + suffix)).unlink(missing_ok=True)
    shutil.copy(old_copy, server.ledger_path)
    stderr = serve_fails(server)
    assert "rolled back" in stderr and "refusing to issue" in stderr


def test_ledger_differing_from_its_checkpoint_refuses(make_server) -> None:
    server = make_server().start()
    for i in range(4):
        server.post_query(make_request(b"%d" % i))
    wait_checkpoint(server, 4)
    server.stop()
    conn = sqlite3.connect(server.ledger_path)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET leaf_hash = zeroblob(32) WHERE idx = 1")
    conn.commit()
    conn.close()
    assert "differs from" in serve_fails(server)


def test_a_publication_killed_mid_write_leaves_nothing_after_restart(make_server) -> None:
    server = make_server().start()
    server.post_query(make_request(b"x"))
    wait_checkpoint(server, 1)
    server.process.kill()
    server.process.wait()
    directory = server.workdir / "var" / "ledger" / "tokens"
    stale = [directory / ".checkpoint.tmp", directory / "checkpoints" / ".7.tmp"]
    for path in stale:
        path.write_bytes(b"half a note")
    server.start()
    assert not any(path.exists() for path in stale)
    assert latest_checkpoint_size(server) >= 1


def _checkpoint_dir(server: TsaServer):
    return server.workdir / "var" / "ledger" / "tokens"


def test_restoring_the_ledger_and_its_checkpoint_directory_together_is_caught(
    make_server, tmp_path
) -> None:
    server = make_server().start()
    for i in range(3):
        server.post_query(make_request(b"%d" % i))
    wait_checkpoint(server, 3)
    server.stop()
    saved_dir = tmp_path / "dir"
    shutil.copytree(_checkpoint_dir(server), saved_dir)
    backup(server.ledger_path, tmp_path / "old.sqlite")
    server.start()
    for i in range(3):
        server.post_query(make_request(b"later %d" % i))
    wait_checkpoint(server, 6)
    server.stop()
    # Both copies outside the operations log go back in time together.
    for suffix in ("-wal", "-shm"):
        (server.ledger_path.parent / (server.ledger_path.name + suffix)).unlink(missing_ok=True)
    shutil.copy(tmp_path / "old.sqlite", server.ledger_path)
    shutil.rmtree(_checkpoint_dir(server))
    shutil.copytree(saved_dir, _checkpoint_dir(server))
    stderr = serve_fails(server)
    assert "operations log's last checkpoint record" in stderr and "rolled back" in stderr


def test_a_lost_checkpoint_directory_needs_the_operators_word(make_server) -> None:
    server = make_server().start()
    server.post_query(make_request(b"x"))
    wait_checkpoint(server, 1)
    server.stop()
    shutil.rmtree(_checkpoint_dir(server))
    stderr = serve_fails(server)
    assert "is missing" in stderr and "--new-ledger" in stderr
    # The operator knows why it is gone: the flag accepts it, and the file is back.
    process = subprocess.Popen(
        [TSA_BIN, "serve", "--new-ledger", "--config", str(server.config_path)],
        cwd=server.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not (_checkpoint_dir(server) / "checkpoint").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(10)
    server.start()  # and from now on no flag is needed
    assert latest_checkpoint_size(server) >= 1


def test_a_server_killed_before_its_first_checkpoint_restarts(make_server) -> None:
    server = make_server(ledger={"checkpoint_interval_s": 3600}).start()
    server.post_query(make_request(b"x"))
    server.process.kill()
    server.process.wait()
    server.start()  # entries that no checkpoint covers contradict nothing
