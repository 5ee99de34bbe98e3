"""The PostgreSQL targets of scripts/bench: a throw-away PostgreSQL server (or, with
`--standby`, a primary and a synchronous streaming standby, as scripts/cluster runs
them) and N `tsa serve` nodes on it, each its own time-stamping unit with its own key,
certificate and log, set up as scripts/cluster sets up its nodes (cluster_nodes).

State that outlives a run (the SoftHSM token with every unit's keys, the development CA,
the certificates) is under var/bench/nodes-<key>/; the database and each node's local
files are new for every run, so each configuration starts from empty logs.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_cost import PgMeter
from cluster_nodes import Node, init_units

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgNodes:
    """PostgreSQL (with its standby or not) and `count` nodes on ports port, port+1..."""

    def __init__(self, key: str, count: int, port: int, workers: int | None, standby: bool) -> None:
        self.root = REPO / "var" / "bench" / f"nodes-{key}"
        self.key, self.workers, self.standby = key, workers, standby
        self.nodes = [Node(f"node{i + 1}", port + i, self.root) for i in range(count)]
        self.server = None  # tests.support.postgres.PostgresServer
        self.pair = None  # cluster_pg.PgPair
        self.tmp: Path | None = None
        self.url = ""
        self.meter: PgMeter | None = None

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes if node.pid is not None]

    @property
    def ca(self) -> Path:
        return self.root / "certs" / "ca.pem"

    def describe(self) -> str:
        where = "a primary and a synchronous standby" if self.standby else "one server"
        return (
            f"PostgreSQL on this machine ({where}; fsync, synchronous_commit on), "
            f"{len(self.nodes)} node{'s' if len(self.nodes) > 1 else ''}"
        )

    def _start_postgres(self) -> None:
        if self.standby:
            from cluster_pg import DATABASE, PgPair

            self.tmp = Path(tempfile.mkdtemp(prefix="tsa-bench-pg-"))
            self.tmp.chmod(0o711)  # the postgres user passes through to pg/
            self.pair = PgPair(self.tmp / "pg", (free_port(), free_port()))
            self.pair.ensure()
            self.url = self.pair.url()
            primary, standby = self.pair.primary, self.pair.standby
            self.meter = PgMeter(
                primary.admin_url(DATABASE),
                primary.postmaster_pid() or 0,
                standby.postmaster_pid(),
            )
            return
        sys.path.insert(0, str(REPO))
        from tests.support.postgres import PostgresServer

        self.server = PostgresServer()
        self.server.start()
        self.url = self.server.create_database("tsa_bench")
        postmaster = int((self.server.datadir / "postmaster.pid").read_text().split()[0])
        self.meter = PgMeter(self.url, postmaster)

    def start(self) -> None:
        self._start_postgres()
        overrides: dict[str, dict] = {
            "pkcs11": {"key_type": self.key},
            "ledger": {"checkpoint_interval_s": 5.0},  # as conf/tsa.toml
        }
        if self.workers is not None:
            overrides["tsa"] = {"signing_workers": self.workers}
        for node in self.nodes:
            shutil.rmtree(node.dir / "ledger", ignore_errors=True)  # the last run's notes
            for stale in node.dir.glob("*.sqlite*"):
                stale.unlink()
            sections = node.settings(self.url, "127.0.0.1:123", 10.0)
            for name, values in overrides.items():
                sections.setdefault(name, {}).update(values)
            node.write_config(sections)
        init_units(self.nodes)
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()

    def log_names(self) -> list[str]:
        from tsa_server.config import load_config

        return [load_config(str(n.config)).ledger.log_names["tokens"] for n in self.nodes]

    def ledger_size(self) -> int:
        """Entries in every node's token log."""
        from ledger.store.postgres import PostgresReader

        total = 0
        for name in self.log_names():
            reader = PostgresReader(self.url, name)
            try:
                total += reader.size()
            finally:
                reader.close()
        return total

    def audit(self) -> dict:
        """`tsa-ledger audit` of every node's token log through its tiles (up to its last
        checkpoint), while the nodes run."""
        ok, size, seconds = True, 0, 0.0
        for node, name in zip(self.nodes, self.log_names(), strict=True):
            out = subprocess.run(
                [VENV / "tsa-ledger", "audit", "--quiet", "--json", f"{node.url}ledger/{name}/"],
                capture_output=True, text=True,
            )  # fmt: skip
            report = json.loads(out.stdout) if out.stdout else {"ok": False}
            ok = ok and bool(report.get("ok"))
            size += int(report.get("size") or 0)
            seconds += float(report.get("seconds") or 0)
        return {"ok": ok, "size": size, "seconds": round(seconds, 2)}

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.meter is not None:
            self.meter.close()
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.pair is not None:
            self.pair.stop()
            self.pair = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
