"""The body of scripts/fuzz: run each fuzz target of tests/reliability/fuzz_targets.py
for a bounded time, then print executions and crashes per target. Exit 1 on a crash."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.reliability.fuzz_targets import TARGETS, run_target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), default=None)
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer seed (0: random)")
    parser.add_argument("--state", type=Path, default=REPO / "var" / "fuzz")
    args = parser.parse_args()
    names = args.target or [name for name in TARGETS if name != "all"]
    crashes = 0
    total = 0
    for name in names:
        flags = [f"-max_total_time={args.seconds}", "-max_len=16384"]
        if args.seed:
            flags.append(f"-seed={args.seed}")
        result = run_target(
            name,
            args.state / "corpus" / name,
            args.state / "crashes",
            flags,
            timeout=args.seconds * 3 + 120,
        )
        total += result.runs
        crashes += result.crashed
        verdict = "CRASH" if result.crashed else "ok"
        print(
            f"{name:11s} executions={result.runs:>9d} time={result.seconds:6.1f}s {verdict}",
            flush=True,
        )
        if result.crashed:
            print(result.crash_report)
            for path in result.artifacts:
                print(f"  crashing input: {path}")
    print(f"fuzz total: executions={total} crashes={crashes} targets={len(names)}")
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
