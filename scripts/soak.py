"""The body of scripts/soak: start `tsa serve` as scripts/bench does, send distinct
valid TimeStampReqs at a steady rate (an asyncio aiohttp client: request i leaves at
start + i/rate), sample the server's RSS every 10 s, then stop the server, audit the
ledger and check that its growth equals the tokens granted. Prints requests, errors
and RSS at start, end and peak; exits 1 when anything is off."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from bench import REPO, VENV, ledger_size, start_server, stop_server

# TimeStampReq v1, SHA-256 imprint, 8-byte nonce, certReq: prefix || digest || nonce || certReq
_PREFIX = bytes.fromhex("3041020101302f300b0609608648016503040201" + "0420")
_CERT_REQ = bytes.fromhex("0101ff")
RSS_EVERY_S = 10.0
MAX_IN_FLIGHT = 2000  # beyond this the server is not keeping up: counted as errors


def query(counter: int) -> bytes:
    nonce = (1 << 62 | counter).to_bytes(8, "big")
    return _PREFIX + os.urandom(32) + b"\x02\x08" + nonce + _CERT_REQ


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Tally:
    sent: int = 0
    granted: int = 0
    rejected: int = 0
    errors: int = 0
    in_flight: int = 0
    worst_lag_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def one(session: aiohttp.ClientSession, url: str, body: bytes, tally: Tally) -> None:
    started = time.monotonic()
    tally.in_flight += 1
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/timestamp-query"}
        ) as reply:
            data = await reply.read()
            if reply.status != 200:
                tally.error(f"HTTP {reply.status}")
            elif len(data) > 9 and data[4] == 0x30 and data[8] == 0:
                tally.granted += 1
            else:
                tally.rejected += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.error(type(exc).__name__)
    finally:
        tally.in_flight -= 1
        tally.latencies.append(time.monotonic() - started)


async def drive(url: str, pid: int, rate: float, seconds: float) -> tuple[Tally, list]:
    tally, samples, tasks = Tally(), [], set()
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        next_sample = start
        i = 0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((round(now - start), rss_mib(pid), tally.sent, tally.errors))
                next_sample += RSS_EVERY_S
            if now - start >= seconds:
                break
            due = start + i / rate
            if due > now:
                await asyncio.sleep(min(due - now, next_sample - now))
                continue
            tally.worst_lag_s = max(tally.worst_lag_s, now - due)
            i += 1
            tally.sent += 1
            if tally.in_flight >= MAX_IN_FLIGHT:
                tally.error("client backlog full")
                continue
            task = asyncio.create_task(one(session, url, query(i), tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        samples.append((round(time.monotonic() - start), rss_mib(pid), tally.sent, tally.errors))
    return tally, samples


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--key", default="ec-p256")
    parser.add_argument("--port", type=int, default=3172)
    args = parser.parse_args()

    state = REPO / "var" / "soak" / args.key
    ledger = state / "ledger.sqlite"
    server, _, url = start_server(state, args.port, args.key)
    try:
        start_size = ledger_size(ledger)
        tally, samples = asyncio.run(drive(url, server.pid, args.rate, args.minutes * 60))
        growth = ledger_size(ledger) - start_size
        alive = server.poll() is None
    finally:
        stop_server(server)
    audit = subprocess.run(
        [VENV / "tsa-ledger", "audit", "--quiet", "--json", ledger], capture_output=True, text=True
    )
    report = json.loads(audit.stdout) if audit.stdout else {"ok": False}

    print(f"TSA soak: {args.minutes:g} min at {args.rate:g} req/s, key {args.key}")
    print(f"{'t s':>5} {'RSS MiB':>8} {'sent':>8} {'errors':>6}")
    for t, rss, sent, errors in samples:
        print(f"{t:>5} {rss:>8.1f} {sent:>8} {errors:>6}")
    seconds = args.minutes * 60
    rss = [s[1] for s in samples]
    # Memory is flat when the last sample is within 10 % (+8 MiB) of the one at 10 s
    # (after warm-up: caches and the first batches).
    base = rss[1] if len(rss) > 2 else rss[0]
    flat = rss[-1] <= base * 1.10 + 8
    lost = growth - tally.granted  # tokens committed that no client saw granted, or -missing
    print(
        f"requests sent {tally.sent} ({tally.sent / seconds:.1f}/s), granted {tally.granted}, "
        f"rejected {tally.rejected}, errors {tally.errors} {tally.error_kinds or ''}"
    )
    print(
        f"latency p50 {percentile(tally.latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(tally.latencies, 99) * 1000:.1f} ms, "
        f"max {max(tally.latencies, default=0) * 1000:.1f} ms; "
        f"worst send lag {tally.worst_lag_s * 1000:.1f} ms"
    )
    print(
        f"server RSS MiB: start {rss[0]:.1f}, after warm-up {base:.1f}, end {rss[-1]:.1f}, "
        f"peak {max(rss):.1f} ({'flat' if flat else 'GROWING'})"
    )
    print(
        f"ledger growth {growth} vs granted {tally.granted}: "
        f"{'equal' if lost == 0 else f'DIFFERENT by {lost}'}; "
        f"audit {'OK' if report.get('ok') else 'FAILED'} ({report.get('size')} entries); "
        f"server {'ran throughout' if alive else 'DIED'}"
    )
    ok = tally.errors == 0 and tally.rejected == 0 and lost == 0 and report.get("ok") and flat
    sys.exit(0 if ok and alive else 1)


if __name__ == "__main__":
    main()
