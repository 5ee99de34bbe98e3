"""The body of scripts/bench: start `tsa serve` on a bench state directory, drive it
with wrk at several concurrency levels, and print throughput, latency, errors, server
CPU and peak RSS; then verify sample replies with `openssl ts -verify` and audit the
ledger, checking that granted replies equal the ledger's growth."""

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
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Each request: a random SHA-256 imprint and a nonce from a per-thread counter, so every
# query is distinct. A reply is counted as granted when its PKIStatus is 0.
LUA = r"""
local counter = 0
granted, rejected = 0, 0  -- globals: done() reads them with thread:get
local prefix = "\48\65\2\1\1\48\47\48\11\6\9\96\134\72\1\101\3\4\2\1\4\32"
function init(args)
  math.randomseed(os.time() + (id or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/timestamp-query"
end
function request()
  counter = counter + 1
  local digest = {}
  for i = 1, 32 do digest[i] = string.char(math.random(0, 255)) end
  local n = counter
  local nonce = {}
  for i = 7, 1, -1 do nonce[i] = string.char(n % 256); n = math.floor(n / 256) end
  local body = prefix .. table.concat(digest) .. "\2\8" .. string.char((id or 1) % 127 + 1)
      .. table.concat(nonce) .. "\1\1\255"
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  -- 30 82 LL LL 30 03 02 01 00: a granted TimeStampResp
  if status == 200 and string.byte(body, 9) == 0 and string.byte(body, 5) == 48 then
    granted = granted + 1 else rejected = rejected + 1 end
end
threads = {}
function setup(thread) thread:set("id", #threads + 1); table.insert(threads, thread) end
function done(summary, latency, requests)
  local g, r = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("granted"); r = r + t:get("rejected") end
  io.write(string.format("BENCH granted=%d rejected=%d p50=%d p90=%d p99=%d\n", g, r,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def cpu_seconds(pid: int) -> float:
    """CPU time of the server and its children (the signing workers)."""
    total = 0.0
    for each in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of the server plus its signing workers."""
    total = 0.0
    for each in [pid, *children(pid)]:
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


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    threads = max(1, min(2, connections))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = dict(re.findall(r"(\w+)=(\d+)", out.split("BENCH", 1)[1]))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "granted": int(figures["granted"]),
        "rejected": int(figures["rejected"]),
        "p50_ms": int(figures["p50"]) / 1000,
        "p90_ms": int(figures["p90"]) / 1000,
        "p99_ms": int(figures["p99"]) / 1000,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "non2xx": int(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
    }


def verify_samples(url: str, ca: Path, count: int) -> int:
    ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        data, query, reply = Path(tmp) / "d", Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
        for i in range(count):
            data.write_bytes(b"bench sample %d %f" % (i, time.time()))
            subprocess.run(
                ["openssl", "ts", "-query", "-data", data, "-sha256", "-cert", "-out", query],
                check=True,
                capture_output=True,
            )
            request = urllib.request.Request(
                url,
                data=query.read_bytes(),
                headers={"Content-Type": "application/timestamp-query"},
            )
            reply.write_bytes(urllib.request.urlopen(request, timeout=10).read())
            result = subprocess.run(
                ["openssl", "ts", "-verify", "-in", reply, "-data", data, "-CAfile", ca],
                capture_output=True,
                text=True,
            )
            ok += "Verification: OK" in result.stdout
    return ok


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
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="where the ledgers live: SQLite files, or a PostgreSQL server this run starts",
    )
    parser.add_argument(
        "--keep-ledger",
        action="store_true",
        help="grow the previous run's ledger instead of starting from an empty one",
    )
    args = parser.parse_args()

    state = REPO / "var" / "bench" / args.key
    ledger: Path | str = state / "ledger.sqlite"
    if not args.keep_ledger:
        fresh_ledger(state)
    postgres = None
    if args.database == "postgresql":  # a throw-away server, fsync and synchronous_commit on
        sys.path.insert(0, str(REPO))
        from tests.support.postgres import PostgresServer

        postgres = PostgresServer()
        atexit.register(postgres.stop)  # also when the run fails half-way (stop is idempotent)
        postgres.start()
        ledger = postgres.create_database()
    server, config, url = start_server(
        state, args.port, args.key, args.workers, "" if postgres is None else str(ledger)
    )
    script = state / "bench.lua"
    script.write_text(LUA)
    rows, granted_total = [], 0
    try:
        start_size = ledger_size(ledger)
        warm = run_wrk(url, script, 16, args.warmup)
        granted_total += warm["granted"]
        for level in [int(x) for x in args.levels.split(",")]:
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            figures = run_wrk(url, script, level, args.duration)
            elapsed = time.monotonic() - t0
            granted_total += figures["granted"]
            figures.update(
                connections=level,
                tokens_per_s=round(figures["granted"] / elapsed),
                server_cpu_pct=round(100 * (cpu_seconds(server.pid) - cpu0) / elapsed),
                peak_rss_mib=round(peak_rss_mib(server.pid), 1),
            )
            rows.append(figures)
        verified = verify_samples(url, state / "certs" / "ca.pem", 20)
        granted_total += 20
        growth = ledger_size(ledger) - start_size
        # A PostgreSQL ledger is audited through the running server's tiles; a SQLite one
        # from its file once the server has stopped.
        source = f"{url}ledger/tokens/" if postgres is not None else str(ledger)
        if postgres is not None:
            audit = _audit(source)
    finally:
        stop_server(server)
        if postgres is not None:
            postgres.stop()
    if postgres is None:
        audit = _audit(source)
    report = json.loads(audit.stdout) if audit.stdout else {"ok": False}
    # wrk stops each level with requests in flight: the server may commit (and answer)
    # up to one request per connection that wrk no longer counts.
    in_flight = 16 + sum(r["connections"] for r in rows)
    consistent = granted_total <= growth <= granted_total + in_flight
    summary = {
        "key": args.key,
        "levels": rows,
        "openssl_verified": f"{verified}/20",
        "granted_replies": granted_total,
        "ledger_growth": growth,
        "max_in_flight": in_flight,
        "growth_consistent": consistent,
        "audit_ok": report.get("ok"),
        "audit_entries": report.get("size"),
        "audit_seconds": report.get("seconds"),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    workers = re.search(r"^signing_workers = (\d+)", config.read_text(), flags=re.M)
    backend = (
        "SQLite synchronous=FULL"
        if postgres is None
        else "PostgreSQL on this machine (fsync, synchronous_commit on)"
    )
    print(
        f"TSA benchmark: key {args.key}, {args.duration} s per level, {backend}, "
        f"signing workers {workers.group(1) if workers else '?'}, {os.cpu_count()} cores; "
        "cpu % and RSS include the workers"
    )
    print(
        f"{'conns':>5} {'tokens/s':>9} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'cpu %':>6} {'peak RSS MiB':>12}"
    )
    for r in rows:
        errors = r["rejected"] + r["socket_errors"] + r["non2xx"]
        print(
            f"{r['connections']:>5} {r['tokens_per_s']:>9} {r['p50_ms']:>7.2f} "
            f"{r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {errors:>6} {r['server_cpu_pct']:>6} "
            f"{r['peak_rss_mib']:>12}"
        )
    print(f"openssl ts -verify of samples: {verified}/20 OK")
    print(
        f"granted replies received {granted_total}, ledger growth {growth} "
        f"(at most {in_flight} answered after wrk stopped counting): "
        f"{'consistent' if consistent else 'INCONSISTENT'}"
    )
    print(
        f"ledger audit: {'OK' if report.get('ok') else 'FAILED'}, "
        f"{report.get('size')} entries in {report.get('seconds')} s"
    )


if __name__ == "__main__":
    main()
