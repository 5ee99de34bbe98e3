"""Drain and stop (issue 17 item 4), seen from clients of the real server: the maintenance
switch (file or SIGUSR1) fails /readyz while requests are still served; SIGTERM and Ctrl-C
let a request in progress finish, sign a last checkpoint and say so; a second server on
the same state directory names the PID of the one already running."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import pytest

from tests.support.queries import failure_of, make_request
from tests.support.tsa import TSA_BIN


def readyz(server) -> tuple[int, dict]:
    status, _, body = server.get("/readyz")
    return status, json.loads(body)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_maintenance_file_and_sigusr1_fail_readyz_but_requests_are_served(make_server) -> None:
    server = make_server().start()
    switch = server.workdir / "var" / "maintenance"
    switch.parent.mkdir(exist_ok=True)
    switch.touch()
    status, body = readyz(server)
    assert status == 503 and not body["ready"]
    assert any(p.startswith("maintenance:") and "var/maintenance" in p for p in body["problems"])
    status, _, reply = server.post_query(make_request(b"still served"))
    assert status == 200 and failure_of(reply)[0] == "granted"
    switch.unlink()
    assert readyz(server)[0] == 200

    server.process.send_signal(signal.SIGUSR1)
    wait_for(lambda: readyz(server)[0] == 503)
    assert "maintenance: switched on by SIGUSR1" in readyz(server)[1]["problems"]
    assert failure_of(server.post_query(make_request(b"also served"))[2])[0] == "granted"
    server.process.send_signal(signal.SIGUSR1)
    wait_for(lambda: readyz(server)[0] == 200)
    assert "maintenance on (SIGUSR1)" in server.log() and "maintenance off" in server.log()


def _open_request(port: int, body: bytes, sent: int) -> socket.socket:
    """A POST /tsr whose body has only `sent` of its bytes on the wire so far."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        "POST /tsr HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/timestamp-query\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:sent])
    return sock


def _reply(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["term", "ctrl_c"])
def test_stop_finishes_the_request_in_progress_and_publishes_a_last_checkpoint(
    make_server, stop_signal
) -> None:
    # An hour between checkpoints: only the stop's own publication can cover the tokens.
    server = make_server(ledger={"checkpoint_interval_s": 3600.0}).start()
    for i in range(3):
        assert failure_of(server.post_query(make_request(b"%d" % i))[2])[0] == "granted"
    query = make_request(b"in progress when the stop came")
    sock = _open_request(server.port, query, 10)
    wait_for(lambda: readyz(server)[0] == 200)  # the half request is being read by now
    server.process.send_signal(stop_signal)
    wait_for(lambda: "stopping: 1 request(s) in progress" in server.log())
    sock.sendall(query[10:])
    status, body = _reply(sock)
    assert status == 200 and failure_of(body)[0] == "granted"
    assert server.process.wait(30) == 0
    log = server.log()
    assert "final checkpoint of" in log and "size 4" in log
    summary = [line for line in log.splitlines() if line.startswith("TSA stopped")]
    assert len(summary) == 1, log
    assert "1 request(s) finished (1 in progress when asked to stop)" in summary[0]
    assert "tokens at size 4" in summary[0]
    # The published checkpoint (a signed note: origin, size, root) covers that token.
    note = (server.workdir / "var" / "ledger" / "tokens" / "checkpoint").read_text()
    assert note.splitlines()[1] == "4"
    assert not (server.workdir / "var" / "tsa.pid").exists()  # removed on a clean stop


def test_a_second_server_on_the_same_state_directory_names_the_running_one(make_server) -> None:
    first = make_server().start()
    second = subprocess.run(
        [TSA_BIN, "serve", "--config", str(first.config_path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=first.workdir,
    )
    assert second.returncode != 0
    assert "a server is already running" in second.stderr
    assert f"PID {first.process.pid}" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert (first.workdir / "var" / "tsa.pid").read_text().strip() == str(first.process.pid)
    assert readyz(first)[0] == 200  # the running server is untouched
