"""Make a large token ledger for measuring the audit (docs/performance.md, "Audit"):
`tsa serve` on a state directory (default var/million: SoftHSM, synchronous=FULL, the
default config), driven by wrk with distinct valid queries until the ledger holds at
least --entries tokens. Every entry is a real token of the issuance path, with its
checkpoints and LedgerBindings. Measurement data only: never used by a test.

    .venv/bin/python scripts/make_ledger.py --entries 1000000
    tsa-ledger audit --tree-only --vkey @var/million/vkey var/million/ledger.sqlite
    tsa-ledger audit -j 2 --vkey @var/million/vkey var/million/ledger.sqlite
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from pathlib import Path

from bench import REPO, ledger_size, start_server, stop_server
from bench_load import LUA, run_wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--state", type=Path, default=REPO / "var" / "million")
    parser.add_argument("--port", type=int, default=3191)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    state = args.state.resolve()
    script = state / "bench.lua"
    state.mkdir(parents=True, exist_ok=True)
    script.write_text(LUA)
    server, _config, url = start_server(state, args.port, "ec-p256")
    started = time.monotonic()
    try:
        while (size := ledger_size(state / "ledger.sqlite")) < args.entries:
            left = args.entries - size
            run_wrk(url, script, args.connections, max(5, min(60, left // 2500)))
            rate = size / (time.monotonic() - started)
            print(f"{size} entries ({rate:,.0f}/s)", file=sys.stderr, flush=True)
        with urllib.request.urlopen(url + "ledger/tokens/vkey", timeout=10) as reply:
            (state / "vkey").write_bytes(reply.read())  # the checkpoint key, as served
    finally:
        stop_server(server)
    print(f"{ledger_size(state / 'ledger.sqlite')} entries in {state / 'ledger.sqlite'}")


if __name__ == "__main__":
    main()
