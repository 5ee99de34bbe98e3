"""The body of scripts/bench: start `tsa serve` on a bench state directory, drive it
with wrk at several concurrency levels, and print throughput, latency, errors, server
CPU and peak RSS; then verify sample replies with `openssl ts -verify` and audit the
ledger, checking that granted replies equal the ledger's growth.

With `--database postgresql` the ledgers are in a throw-away PostgreSQL server this run
starts, with `--nodes N` shared by N `tsa serve` nodes, each its own time-stamping unit
(bench_nodes.py), the load spread over them (bench_load.py), and `--standby` adds a
synchronous streaming standby. Every level then also reports what a token costs: CPU in
the nodes and in PostgreSQL, PostgreSQL's write transactions, commits, WAL fsyncs and
WAL bytes (bench_cost.py), and, at the end, the ledger tables' bytes per entry.
`--database sqlite,postgresql --nodes 1,3` measures every configuration in one run, so
the figures are comparable; docs/scaling.md reads them.

`--peer` runs the C server uts-server on the same load, each level right after ours, and
prints both with their ratio (bench_peer.py); `--profile 64` adds one level under py-spy
and prints the CPU per token of each stage (bench_profile.py); docs/performance.md."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench_cost import cpu_seconds, loadavg, machine_busy_seconds, tree
from bench_load import LUA, run_wrk, verify_samples
from bench_nodes import PgNodes
from bench_peer import Peer, print_comparison
from bench_profile import print_profile, profile
from bench_report import errors, print_costs, print_result

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv" / "bin"


def peak_rss_mib(pids: int | list[int]) -> float:
    """Peak resident memory of the servers plus their signing workers."""
    total = 0.0
    for each in [p for pid in ([pids] if isinstance(pids, int) else pids) for p in tree(pid)]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def write_config(
    state: Path, port: int, key: str, workers: int | None = None, database: str = ""
) -> Path:
    config = (REPO / "conf" / "tsa.toml").read_text()
    config = re.sub(r'^url = ""', f'url = "{database}"', config, count=1, flags=re.M)
    config = config.replace('"var/', f'"{state}/')
    config = re.sub(r"^port = \d+", f"port = {port}", config, flags=re.M)
    config = re.sub(r'^key_type = "[^"]+"', f'key_type = "{key}"', config, flags=re.M)
    config = re.sub(r'^token_label = "[^"]+"', f'token_label = "bench-{key}"', config, flags=re.M)
    if workers is not None:
        config = re.sub(
            r"^signing_workers = \d+", f"signing_workers = {workers}", config, flags=re.M
        )
    path = state / "tsa.toml"
    path.write_text(config)
    return path


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("bench: the server exited during start-up")
        try:
            with urllib.request.urlopen(url + "readyz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit("bench: the server did not become ready")


def start_server(
    state: Path, port: int, key: str, workers: int | None = None, database: str = ""
) -> tuple[subprocess.Popen, Path, str]:
    """Initialise the token of a bench state directory and start `tsa serve` on it
    (shared with scripts/soak). Returns the process, its config file and its URL."""
    state.mkdir(parents=True, exist_ok=True)
    config = write_config(state, port, key, workers, database)
    subprocess.run([VENV / "tsa", "init", "--config", config], check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}/"
    log = open(state / "server.log", "ab")
    server = subprocess.Popen(
        [VENV / "tsa", "serve", "--config", config], stdout=log, stderr=subprocess.STDOUT
    )
    wait_ready(url, server)
    return server, config, url


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(30)


def fresh_ledger(state: Path) -> None:
    """Start from empty ledgers (the token, keys and certificates are kept), so each run
    measures the same thing and the closing audit stays short."""
    for pattern in ("ledger.sqlite*", "ops.sqlite*"):
        for path in state.glob(pattern):
            path.unlink()
    shutil.rmtree(state / "ledger", ignore_errors=True)


def ledger_size(path: Path | str) -> int:
    """Entries in the token ledger: a SQLite file, or a PostgreSQL database's URL."""
    if isinstance(path, str):
        from ledger.store.postgres import PostgresReader

        reader = PostgresReader(path, "tokens")
        try:
            return reader.size()
        finally:
            reader.close()
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0]
    finally:
        conn.close()


def _audit(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VENV / "tsa-ledger", "audit", "--quiet", "--json", source], capture_output=True, text=True
    )


class SqliteTarget:
    """One `tsa serve` on SQLite files, as scripts/run starts it (conf/tsa.toml)."""

    standby = False
    meter = None

    def __init__(self, key: str, port: int, workers: int | None, keep: bool) -> None:
        self.key, self.port, self.workers, self.keep = key, port, workers, keep
        self.state = REPO / "var" / "bench" / key
        self.ca = self.state / "certs" / "ca.pem"
        self.server: subprocess.Popen | None = None
        self.config: Path | None = None
        self.urls: list[str] = []

    @property
    def pids(self) -> list[int]:
        return [self.server.pid] if self.server is not None else []

    def describe(self) -> str:
        return "SQLite synchronous=FULL, 1 node"

    def start(self) -> None:
        if not self.keep:
            fresh_ledger(self.state)
        self.server, self.config, url = start_server(self.state, self.port, self.key, self.workers)
        self.urls = [url]

    def ledger_size(self) -> int:
        return ledger_size(self.state / "ledger.sqlite")

    def audit(self) -> dict:
        """From the file, once the server has stopped."""
        out = _audit(str(self.state / "ledger.sqlite"))
        return json.loads(out.stdout) if out.stdout else {"ok": False}

    def stop(self) -> None:
        if self.server is not None:
            stop_server(self.server)
            self.server = None


def run_level(urls: list[str], pids: list[int], meter, script: Path, level: int,
              duration: int) -> dict:  # fmt: skip
    """One level of wrk on `urls`; the figures with the CPU of `pids` (and their
    descendants) per token, wrk's, and the cores busy outside the run."""
    cpu0, busy0, t0 = cpu_seconds(pids), machine_busy_seconds(), time.monotonic()
    pg0 = meter.snapshot() if meter else None
    figures = run_wrk(urls, script, level, duration)
    elapsed = time.monotonic() - t0
    pg1 = meter.snapshot() if meter else None
    cpu, busy = cpu_seconds(pids) - cpu0, machine_busy_seconds() - busy0
    granted = figures["granted"]
    figures.pop("hist", None)
    figures.update(
        connections=level,
        tokens_per_s=round(granted / elapsed),
        server_cpu_pct=round(100 * cpu / elapsed),
        node_cpu_us_per_token=round(1e6 * cpu / max(granted, 1)),
        wrk_cpu_us_per_token=round(1e6 * figures["wrk_cpu_s"] / max(granted, 1)),
        peak_rss_mib=round(peak_rss_mib(pids), 1),
    )
    figures["errors"] = errors(figures)
    ours = cpu + figures.pop("wrk_cpu_s")
    if meter and pg0 and pg1:
        figures.update(meter.level(pg0, pg1, granted, elapsed))
        ours += figures.pop("pg_cpu_s") + figures.pop("standby_cpu_s", 0.0)
    figures["other_cores"] = round(max(busy - ours, 0.0) / elapsed, 2)
    return figures


def measure(
    target: SqliteTarget | PgNodes, args: argparse.Namespace, script: Path, peer: Peer | None = None
) -> dict:
    """Start a target, warm it up, run every level, verify samples, check the ledger's
    growth and audit it; stop it. With `peer` (running), each level is run on the peer
    right after the target. Returns the figures."""
    rows, peer_rows, granted_total, storage, stages = [], [], 0, {}, None
    target.start()
    try:
        start_size = target.ledger_size()
        granted_total += run_wrk(target.urls, script, 16, args.warmup)["granted"]
        if peer is not None:
            run_wrk(peer.urls, script, 16, args.warmup)
        for level in [int(x) for x in args.levels.split(",")]:
            figures = run_level(
                target.urls, target.pids, target.meter, script, level, args.duration
            )
            granted_total += figures["granted"]
            rows.append(figures)
            if peer is not None:
                peer_rows.append(run_level(peer.urls, peer.pids, None, script, level,
                                           args.duration))  # fmt: skip
        if args.profile and target.pids:
            granted, found = profile(target.urls, target.pids[0], script, args.profile,
                                     args.duration)  # fmt: skip
            granted_total += granted
            if found:
                print_profile(found)
                stages = found
        wanted = 40 if peer is not None else 20
        per_node = max(1, wanted // len(target.urls))
        verified = sum(verify_samples(url, target.ca, per_node) for url in target.urls)
        samples = per_node * len(target.urls)
        granted_total += samples
        growth = target.ledger_size() - start_size
        report = target.audit() if target.meter is not None else None
        if target.meter is not None:
            storage = target.meter.storage()
    finally:
        target.stop()
    if report is None:
        report = target.audit()
    # wrk stops each level with requests in flight: the servers may commit (and answer)
    # up to one request per connection that wrk no longer counts.
    in_flight = 16 + sum(r["connections"] for r in rows) + args.profile
    result = {
        "config": target.describe(),
        "key": args.key,
        "levels": rows,
        "openssl_verified": f"{verified}/{samples}",
        "granted_replies": granted_total,
        "ledger_growth": growth,
        "max_in_flight": in_flight,
        "growth_consistent": granted_total <= growth <= granted_total + in_flight,
        "audit_ok": report.get("ok"),
        "audit_entries": report.get("size"),
        "audit_seconds": report.get("seconds"),
        "postgres_storage": storage,
        "profile": stages,
    }
    if peer is not None:
        result["peer"] = {
            "levels": peer_rows,
            "openssl_verified": f"{verify_samples(peer.urls[0], peer.ca, 40)}/40",
        }
    return result


def plan(args: argparse.Namespace) -> list[tuple[str, int, bool]]:
    """The configurations of one run, in order: (database, nodes, standby)."""
    databases = args.database.split(",")
    nodes = [int(n) for n in str(args.nodes).split(",")]
    if any(d not in ("sqlite", "postgresql") for d in databases):
        sys.exit("bench: --database takes sqlite, postgresql or both (sqlite,postgresql)")
    if "postgresql" not in databases and (nodes != [1] or args.standby):
        sys.exit("bench: several nodes and --standby need --database postgresql")
    runs: list[tuple[str, int, bool]] = [("sqlite", 1, False)] if "sqlite" in databases else []
    if "postgresql" in databases:
        runs += [("postgresql", n, False) for n in nodes]
        if args.standby:
            runs += [("postgresql", n, True) for n in nodes]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key", default="ec-p256")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--port", type=int, default=3171)
    parser.add_argument(
        "--workers", type=int, default=None, help="signing worker processes (default: config)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="where the ledgers live: sqlite (files), postgresql (a server this run "
        "starts), or sqlite,postgresql for both in one run",
    )
    parser.add_argument(
        "--nodes",
        default="1",
        help="PostgreSQL only: tsa serve nodes sharing the database, each its own unit "
        "(e.g. 3, or 1,3 for both in one run); the load is spread over them",
    )
    parser.add_argument(
        "--standby",
        action="store_true",
        help="PostgreSQL only: also run each node count on a primary with a synchronous "
        "streaming standby (the cost of synchronous replication)",
    )
    parser.add_argument(
        "--keep-ledger",
        action="store_true",
        help="SQLite only: grow the previous run's ledger instead of starting from empty",
    )
    parser.add_argument(
        "--peer",
        action="store_true",
        help="also run the C server uts-server (built once from ../shared/peers/uts-server) "
        "on the same load, each level right after ours, and print both and their ratio",
    )
    parser.add_argument("--peer-port", type=int, default=18020)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="CONNS",
        help="after the levels, one more run at CONNS connections under py-spy: CPU µs per "
        "token per stage (bench_profile.py)",
    )  # fmt: skip
    parser.add_argument("--peer-dir", type=Path, default=REPO / "var" / "peer")
    args = parser.parse_args()
    runs = plan(args)
    peer = Peer(args.peer_dir.resolve(), args.peer_port) if args.peer else None
    if peer is not None:
        peer.start()
        atexit.register(peer.stop)
    script = REPO / "var" / "bench" / "bench.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(LUA)
    started = {"at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg": loadavg()}
    results = []
    for database, nodes, standby in runs:
        if database == "sqlite":
            target = SqliteTarget(args.key, args.port, args.workers, args.keep_ledger)
        else:
            target = PgNodes(args.key, nodes, args.port, args.workers, standby)
            atexit.register(target.stop)  # also when the run fails half-way (idempotent)
        results.append(measure(target, args, script, peer))
        if not args.json:
            print_result(results[-1], args, flush=True)
            if peer is not None:
                print_comparison(results[-1])
                print(flush=True)
    summary = {
        "started": started,
        "ended": {"at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg": loadavg()},
        "cores": os.cpu_count(),
        "command": " ".join(["scripts/bench", *sys.argv[1:]]),
        "runs": results,
    }
    if peer is not None:
        peer.stop()
    (REPO / "var" / "bench" / "last-run.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_costs(summary)
        print("figures as JSON: var/bench/last-run.json")


if __name__ == "__main__":
    main()
