"""The cluster fault test (issue 16): a PostgreSQL primary with a synchronous standby and
three `tsa serve` nodes, each its own unit, started by scripts/cluster.py's `Cluster` on
free ports. Clients with connections spread over the nodes keep every token and deposit
answer they receive while a node is SIGKILLed (the supervisor restarts it), a node is
SIGSTOPped past its lease, replaced by a second process of the same unit and resumed
(fenced: it must not write again), and the primary is SIGKILLed and the standby promoted.

Afterwards every token received is in its unit's log (same bytes), serials are unique
across all logs, every log audits clean through the nodes' URLs (tsa-ledger audit:
tiles, chain, signed checkpoints), every deposit answered is an item with its token in
a log, credits certified + balance = credits granted, and each node grants again.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import tsp

from ledger.store.postgres import PostgresReader
from tests.support.ntp import NtpResponder
from tests.support.queries import make_request, parse_response
from tests.support.tsa import free_port
from tsa_server.evidence.renewal_runner import STALE_RESERVATION

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from cluster import Cluster  # noqa: E402
from cluster_nodes import TSA, Node  # noqa: E402

pytestmark = pytest.mark.slow
LEASE_S = 2.0
CREDITS = 30
THREADS_PER_NODE = 2
AUDIT = [str(Path(sys.executable).with_name("tsa-ledger")), "audit", "--quiet", "--json"]


def serial_of(token: bytes) -> int:
    content = tsp.ContentInfo.load(token)["content"]
    return int(content["encap_content_info"]["content"].parsed["serial_number"].native)


class Load:
    """Time-stamp clients (THREADS_PER_NODE per node slot) and one depositor spreading
    deposits over the slots. `targets[slot]` is the URL a slot's clients use (a test
    may point it at a replacement). Every granted token and every 201 is kept."""

    def __init__(self, targets: list[str], api_key: str) -> None:
        self.targets = targets
        self.api_key = api_key
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.tokens: list[tuple[int, bytes]] = []  # (slot, token)
        self.items: list[dict] = []
        self.refused = 0
        self.failures: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._guard, args=(self._stamp, n))
            for n in range(len(targets) * THREADS_PER_NODE)
        ] + [threading.Thread(target=self._guard, args=(self._deposit, 0))]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a client hung"
        if self.failures:
            raise self.failures[0]

    def count(self, slot: int | None = None) -> int:
        with self.lock:
            return sum(1 for s, _ in self.tokens if slot is None or s == slot)

    def wait_for(self, more: int, slot: int | None = None, timeout: float = 60) -> None:
        target = self.count(slot) + more
        deadline = time.monotonic() + timeout
        while self.count(slot) < target:
            assert time.monotonic() < deadline, f"no new tokens (slot {slot})"
            assert not self.failures, self.failures
            time.sleep(0.1)

    def _guard(self, work, n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.failures.append(exc)

    def _post(self, url: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        host, port = url.split("//")[1].rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=15)
        try:
            conn.request("POST", path, body, headers)
            reply = conn.getresponse()
            return reply.status, reply.read()
        finally:
            conn.close()

    def _stamp(self, n: int) -> None:
        slot, i = n % len(self.targets), 0
        while not self.stop.is_set():
            i += 1
            query = make_request(b"cluster client %d request %d %s" % (n, i, os.urandom(8)))
            try:
                status, body = self._post(
                    self.targets[slot], "/", query, {"Content-Type": "application/timestamp-query"}
                )
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)  # a node being killed, paused or restarted
                continue
            reply = parse_response(body) if status == 200 else None
            if reply is not None and reply["status"]["status"].native == "granted":
                with self.lock:
                    self.tokens.append((slot, reply["time_stamp_token"].dump()))
            time.sleep(0.15)

    def _deposit(self, _: int) -> None:
        i = 0
        while not self.stop.wait(0.4):
            i += 1
            body = {
                "sha256": secrets.token_hex(32),
                "depositor": "Cluster",
                "work_content": "x",
                "statement": "ours",
            }
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.api_key}",
            }
            try:
                status, answer = self._post(
                    self.targets[i % len(self.targets)],
                    "/api/v1/deposits",
                    json.dumps(body).encode(),
                    headers,
                )
            except (OSError, http.client.HTTPException):
                continue
            if status == 201:
                with self.lock:
                    self.items += json.loads(answer)["items"]
            elif status == 402:
                self.refused += 1


def tsa_cli(node: Node, *args: str) -> str:
    out = subprocess.run(
        [TSA, *args, "--config", str(node.config)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def credits(node: Node, org: str) -> tuple[int, int]:
    """The organisation's balance and the units its unfinished deposits still hold."""
    report = json.loads(tsa_cli(node, "fees", "balance", "--org", org, "--json"))
    return report["balance"], sum(lot["held"] for lot in report["lots"])


def grants(url: str) -> bool:
    request = urllib.request.Request(
        url, make_request(os.urandom(16)), {"Content-Type": "application/timestamp-query"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return parse_response(reply.read())["status"]["status"].native == "granted"
    except OSError:
        return False


def wait_granting(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not grants(url):
        assert time.monotonic() < deadline, f"{url} does not grant again"
        time.sleep(0.3)


def checkpoint_size(url: str, log: str) -> int:
    with urllib.request.urlopen(f"{url}ledger/{log}/checkpoint", timeout=10) as reply:
        return int(reply.read().decode().splitlines()[1])


def start_replacement(node: Node) -> tuple[subprocess.Popen, str]:
    """A second process of `node`'s unit (same key, logs, checkpoint directories) on a
    port and PID file of its own, as an operator would start elsewhere."""
    port = free_port()
    text = node.config.read_text().replace(f"port = {node.port}\n", f"port = {port}\n")
    text = text.replace(str(node.dir / "tsa.pid"), str(node.dir / "replacement.pid"))
    config = node.dir / "replacement.toml"
    config.write_text(text)
    log = open(node.dir / "replacement.log", "ab")
    proc = subprocess.Popen(
        [TSA, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=node.dir
    )
    log.close()
    return proc, f"http://127.0.0.1:{port}/"


@pytest.fixture
def cluster(session_ntp: NtpResponder):
    root = Path(tempfile.mkdtemp(prefix="tsa-cluster-"))
    root.chmod(0o711)  # the postgres user passes through to its directories
    cluster = Cluster(
        root / "c",
        [free_port() for _ in range(3)],
        pg_ports=(free_port(), free_port()),
        ntp=session_ntp.address,
        lease_seconds=LEASE_S,
        overrides={
            "tsa": {"signing_workers": 0},
            "clock": {"interval_s": 0.5, "max_age_s": 6.0, "timeout_s": 0.5},
            "limits": {f"{k}_per_second": 0.0 for k in ("verify", "lookup", "ledger")},
            "evidence": {"rate_per_second": 0.0},
        },
        say=lambda line: None,
    )
    stop = threading.Event()
    supervisor = threading.Thread(target=cluster.supervise, args=(stop,))
    try:
        cluster.setup()
        cluster.start_nodes()
        supervisor.start()
        yield cluster
    finally:
        stop.set()
        if supervisor.is_alive():
            supervisor.join()
        cluster.stop()
        if not os.environ.get("TSA_KEEP_CLUSTER"):  # keep the logs to look at
            shutil.rmtree(root, ignore_errors=True)


def test_tokens_and_credits_survive_node_and_primary_faults(cluster: Cluster) -> None:
    node1, node2, _ = cluster.nodes
    org = tsa_cli(node1, "accounts", "create-org", "Cluster test")
    key = tsa_cli(
        node1, "accounts", "create-key", "--org", org, "--role", "owner", "--scope", "deposit,read"
    )
    tsa_cli(node1, "fees", "grant", "--org", org, "--units", str(CREDITS), "--key", "cluster-1")
    targets = [node.url for node in cluster.nodes]

    with Load(targets, key) as load:
        load.wait_for(30)
        # 1. A node is killed; the supervisor restarts it and it takes its log back.
        node1.signal(signal.SIGKILL)
        load.wait_for(10, slot=0, timeout=90)
        assert node1.restarts == 1

        # 2. A node paused past its lease is replaced, then resumed: fenced.
        node2.signal(signal.SIGSTOP)
        time.sleep(LEASE_S + 1.5)
        replacement, replacement_url = start_replacement(node2)
        try:
            wait_granting(replacement_url)
            targets[1] = replacement_url
            load.wait_for(10, slot=1)
            restarts = node2.restarts
            node2.signal(signal.SIGCONT)
            # It finds itself deposed (its lease renewal or its next commit is refused),
            # grants nothing more and stops by itself; the supervisor restarts it, and it
            # waits for its log until the replacement lets it go.
            deadline = time.monotonic() + 30
            while node2.restarts == restarts:
                assert time.monotonic() < deadline, "a deposed node did not stop"
                time.sleep(0.2)
            assert "another node took over the ledger log" in node2.log.read_text()
            assert not grants(node2.url), "a deposed node still grants tokens"
        finally:
            replacement.send_signal(signal.SIGTERM)  # ... and it takes over again
            replacement.wait(60)
        wait_granting(node2.url)
        targets[1] = node2.url
        load.wait_for(10, slot=1)

        # 3. The primary is lost; the standby is promoted; the nodes find it.
        cluster.pg.kill_primary()
        time.sleep(1.0)
        cluster.pg.promote()
        for node in cluster.nodes:
            wait_granting(node.url)
        for slot in range(3):
            load.wait_for(5, slot=slot)

    # Every token received is in its unit's log, with the same bytes.
    url, logs = cluster.database_url, {}
    for node in cluster.nodes:
        reader = PostgresReader(url, node.unit)
        try:
            logs[node.unit] = {e.serial: e.token for e in reader.entries(0)}
        finally:
            reader.close()
    for slot, token in load.tokens:
        assert logs[cluster.nodes[slot].unit].get(serial_of(token)) == token
    serials = [s for log in logs.values() for s in log]
    assert len(serials) == len(set(serials)), "a serial was issued twice"
    assert len(load.tokens) == len({serial_of(t) for _, t in load.tokens})

    # Deposits: each answered item exists, its token is in a log; no credit lost.
    assert load.items, "no deposit was answered"
    for item in load.items:
        assert int(item["serial"], 16) in set(serials), item
    listed = json.loads(tsa_cli(node1, "evidence", "list", "--org", org, "--json"))
    assert {i["id"] for i in load.items} <= {i["id"] for i in listed}
    balance, held = credits(node1, org)
    # A unit whose refund met the fault (or whose node was stopped mid-deposit) stays
    # held until the stale-reservation sweep returns it; none is ever lost.
    assert len(listed) + balance + held == CREDITS, (len(listed), balance, held)
    later = datetime.now(UTC) + STALE_RESERVATION + timedelta(minutes=1)
    tsa_cli(node1, "evidence", "renew-run", "--at", later.isoformat())
    assert credits(node1, org) == (CREDITS - len(listed), 0)

    # Every log audits clean through a node, once its checkpoint covers it.
    for node in cluster.nodes:
        for log in (node.unit, f"{node.unit}-ops"):
            deadline = time.monotonic() + 30
            while checkpoint_size(node1.url, log) < len(logs.get(log, ())):
                assert time.monotonic() < deadline, f"{log} is not checkpointed"
                time.sleep(0.3)
            audit = subprocess.run(
                [*AUDIT, f"{node1.url}ledger/{log}/"], capture_output=True, text=True, timeout=120
            )
            assert audit.returncode == 0, audit.stdout + audit.stderr
    for node in cluster.nodes:
        assert grants(node.url)
