"""What scripts/bench prints: per configuration the throughput table and the checks,
and at the end one table of what a token costs in every configuration of the run."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _workers(args: argparse.Namespace) -> str:
    if args.workers is not None:
        return str(args.workers)
    found = re.search(
        r"^signing_workers = (\d+)", (REPO / "conf" / "tsa.toml").read_text(), flags=re.M
    )
    return found.group(1) if found else "?"


def errors(row: dict) -> int:
    return int(row["rejected"] + row["socket_errors"] + row["non2xx"])


def print_result(result: dict, args: argparse.Namespace, *, flush: bool = False) -> None:
    print(
        f"TSA benchmark: key {result['key']}, {args.duration} s per level, {result['config']}, "
        f"signing workers {_workers(args)} per node, {os.cpu_count()} cores; "
        "cpu % and RSS are the nodes' with their workers"
    )
    print(
        f"{'conns':>5} {'tokens/s':>9} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'cpu %':>6} {'peak RSS MiB':>12}"
    )
    for r in result["levels"]:
        print(
            f"{r['connections']:>5} {r['tokens_per_s']:>9} {r['p50_ms']:>7.2f} "
            f"{r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {errors(r):>6} {r['server_cpu_pct']:>6} "
            f"{r['peak_rss_mib']:>12}"
        )
    print(f"openssl ts -verify of samples: {result['openssl_verified']} OK")
    print(
        f"granted replies received {result['granted_replies']}, ledger growth "
        f"{result['ledger_growth']} (at most {result['max_in_flight']} answered after wrk "
        f"stopped counting): {'consistent' if result['growth_consistent'] else 'INCONSISTENT'}"
    )
    print(
        f"ledger audit: {'OK' if result['audit_ok'] else 'FAILED'}, "
        f"{result['audit_entries']} entries in {result['audit_seconds']} s",
        flush=flush,
    )
    print(flush=flush)


COSTS = (
    # (heading, key, width)
    ("conns", "connections", 5),
    ("tokens/s", "tokens_per_s", 8),
    ("p99 ms", "p99_ms", 7),
    ("node µs", "node_cpu_us_per_token", 7),
    ("pg µs", "pg_cpu_us_per_token", 6),
    ("stby µs", "standby_cpu_us_per_token", 7),
    ("wrk µs", "wrk_cpu_us_per_token", 6),
    ("other", "other_cores", 5),
    ("writes/s", "pg_write_tx_per_s", 8),
    ("commits/s", "pg_commits_per_s", 9),
    ("fsyncs/s", "pg_wal_syncs_per_s", 8),
    ("tok/write", "pg_tokens_per_write_tx", 9),
    ("WAL B/tok", "pg_wal_bytes_per_token", 9),
)


def print_costs(summary: dict) -> None:
    """One table for the whole run: CPU per token (µs) in the nodes, PostgreSQL, its
    standby and wrk; other = cores kept busy by processes outside this run; then
    PostgreSQL's rates and WAL bytes per token."""
    print(
        f"Costs per token, {summary['cores']} cores; load average {summary['started']['loadavg']}"
        f" at the start ({summary['started']['at']}), {summary['ended']['loadavg']} at the end"
    )
    print("node/pg/stby/wrk µs: CPU µs per token; other: cores busy outside this run")
    width = max(len(r["config"]) for r in summary["runs"])
    print(f"{'configuration':<{width}} " + " ".join(f"{h:>{w}}" for h, _, w in COSTS))
    for run in summary["runs"]:
        for row in run["levels"]:
            cells = []
            for _, key, w in COSTS:
                value = row.get(key, "-")
                cells.append(f"{value:>{w}.2f}" if key == "p99_ms" else f"{value!s:>{w}}")
            print(f"{run['config']:<{width}} " + " ".join(cells))
    for run in summary["runs"]:
        storage = run.get("postgres_storage")
        if storage:
            print(
                f"{run['config']}: {storage['entries']} ledger entries (all logs); bytes per "
                f"entry: entries table {storage['entry_bytes_per_entry']} (with its indexes), "
                f"tree nodes {storage['tree_bytes_per_entry']}, ledger tables "
                f"{storage['ledger_bytes_per_entry']}, whole database "
                f"{storage['database_bytes_per_entry']}"
            )
