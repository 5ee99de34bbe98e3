"""`scripts/bench --profile`: where a token's CPU goes. During one more run of one level
(default 64 connections), py-spy samples the server and each signing worker (Python
frames, --nonblocking, 100 Hz; threads waiting are not counted). Each sample goes to
the first stage its stack names, from the innermost frame out (so a SQLite call made by
the committer is "ledger commit", the PKCS#11 sign call in a worker is "C_Sign", a
SHA-256 inside the DER builder is "DER building"); C work is charged to the Python
call that made it. The CPU each process used in that window (/proc) is
shared out over its samples: µs per token per stage.

py-spy comes from the package registry, installed once into var/bench/py-spy (pip
install --target); without it the option says so and the run goes on without a profile.
Sampling without stopping the process costs little, but its tokens/s is still not a
throughput figure: the shares, scaled by the measured CPU, are what it gives."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench_cost import children, cpu_seconds
from bench_load import run_wrk

REPO = Path(__file__).resolve().parents[1]
PY_SPY = REPO / "var" / "bench" / "py-spy"

# (stage, pattern on one frame), tried on each frame from the innermost out.
STAGES = [
    ("signing: SoftHSM C_Sign (ECDSA)", r"pkcs11|softhsm"),
    ("signing: worker IPC (pipes, pickle)", r"signing/pool\.py|multiprocessing/connection"),
    ("ledger: WAL checkpoint thread", r"sqlite_wal\.py"),
    ("ledger: lookup side-database copier", r"sqlite_lookup\.py"),
    ("ledger commit (committer thread, SQLite)", r"sqlite|issuance/commit\.py"),
    ("DER building (TSTInfo, signed attrs)", r"rfc3161/token\.py|rfc3161/der"),
    ("request parsing", r"rfc3161/request"),
    ("sequencing and batching", r"issuance/"),
    ("reply writing", r"http_writer|StreamWriter|web_response\.py|write"),
    ("HTTP: aiohttp, uvloop, handler", r"aiohttp|uvloop|asyncio|web/"),
]


def ensure_py_spy() -> Path | None:
    binary = PY_SPY / "bin" / "py-spy"
    if not binary.exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", PY_SPY, "py-spy"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not binary.exists():
            print(f"bench --profile: py-spy not installable: {done.stderr.strip()[-300:]}")
            return None
    return binary


# A thread py-spy caught waiting (its idle test misses waits in system calls): not CPU,
# not counted. Besides the waits on locks and selectors, a worker's blocking read of its
# pipe, and the ledger's COMMIT (its samples are almost all the fsync of the WAL: the
# rows were written by the statements before it).
WAITING = re.compile(
    r"^(Condition\.wait|Event\.wait|wait|_wait_for_tstate_lock|select|poll) \("
    r"|^Connection\._recv \("
)


def _commit_line() -> str:
    source = (REPO / "ledger" / "store" / "sqlite.py").read_text().splitlines()
    start = next((n for n, text in enumerate(source) if "def append(" in text), 0)
    lines = [n for n, text in enumerate(source, 1) if n > start and '"COMMIT"' in text]
    return f"SqliteStore.append (ledger/store/sqlite.py:{lines[0]})" if lines else "\0"


COMMIT = _commit_line()


def stage_of(stack: list[str]) -> str | None:
    if stack and (WAITING.search(stack[-1]) or stack[-1] == COMMIT):
        return None
    for frame in reversed(stack):
        for stage, pattern in STAGES:
            if re.search(pattern, frame):
                return stage
    return "other (interpreter, GC, unresolved)"


def profile(
    urls: list[str], server_pid: int, script: Path, level: int, duration: int
) -> tuple[int, dict | None]:
    """One level under py-spy: the granted replies, and per process and stage µs of CPU
    per token (None without py-spy)."""
    binary = ensure_py_spy()
    if binary is None:
        return 0, None
    out = REPO / "var" / "bench" / "profile.txt"  # one file per process: profile.<pid>.txt
    workers = children(server_pid)
    pids = {"server": [server_pid], "signing workers": workers}
    before = {name: sum(cpu_seconds([p]) for p in group) for name, group in pids.items()}
    spies = {
        pid: subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--nonblocking",
                "--rate",
                "100",
                "--format",
                "raw",
                "--duration",
                str(duration),
                "--output",
                out.with_suffix(f".{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for pid in [server_pid, *workers]
    }
    time.sleep(1)
    figures = run_wrk(urls, script, level, duration - 2)
    for spy in spies.values():
        spy.wait(duration + 30)
    after = {name: sum(cpu_seconds([p]) for p in group) for name, group in pids.items()}
    server_cpu = (
        after["server"] - after["signing workers"] - before["server"] + before["signing workers"]
    )  # cpu_seconds counts a process with its descendants
    cpu = {"server": server_cpu, "signing workers": after["signing workers"] - before[
        "signing workers"]}  # fmt: skip
    samples: dict[str, Counter[str]] = {"server": Counter(), "signing workers": Counter()}
    for pid in spies:
        who = "server" if pid == server_pid else "signing workers"
        path = out.with_suffix(f".{pid}.txt")
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            stack, _, count = line.rpartition(" ")
            stage = stage_of(stack.split(";")) if stack and count.isdigit() else None
            if stage is not None:
                samples[who][stage] += int(count)
    if not any(samples.values()):
        print("bench --profile: py-spy recorded nothing")
        return figures["granted"], None
    tokens = max(figures["granted"], 1)
    result: dict = {"connections": level, "tokens": figures["granted"], "stages": {}}
    for who, counter in samples.items():
        total = sum(counter.values()) or 1
        result[f"{who}_us_per_token"] = round(1e6 * cpu[who] / tokens)
        for stage, count in counter.most_common():
            result["stages"][f"{who}: {stage}"] = round(1e6 * cpu[who] * count / total / tokens, 1)
    result["tokens_per_s_under_profile"] = round(figures["granted"] / (duration - 2))
    return figures["granted"], result


def print_profile(found: dict) -> None:
    print(
        f"CPU per token by stage (py-spy over {found['connections']} connections, "
        f"{found['tokens']} tokens, {found['tokens_per_s_under_profile']} tokens/s under the "
        f"profiler): server {found['server_us_per_token']} µs, signing workers "
        f"{found['signing workers_us_per_token']} µs"
    )
    for stage, us in found["stages"].items():
        print(f"  {us:>7.1f} µs  {stage}")
    print(flush=True)
