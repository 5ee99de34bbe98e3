"""The body of scripts/cluster (issue 16 item 6): a PostgreSQL primary with a synchronous
streaming standby and N `tsa serve` nodes, each its own time-stamping unit, all on this
machine and on loopback only, under var/cluster/.

    scripts/cluster [--nodes 3] [--port 3161] [--pg-ports 5433,5434] [--lease-seconds 10]
    scripts/cluster promote [--force]     # after the primary is lost: the standby takes over

`scripts/cluster` makes what is missing (databases, token, keys, CA, certificates,
configuration files; idempotent), starts what is not running, prints how to reach
everything, restarts a node that dies, and stops it all (nodes first, drained, then
PostgreSQL) on Ctrl-C or SIGTERM. The nodes name both PostgreSQL servers in their URL
(`target_session_attrs=read-write`), so after `scripts/cluster promote` they reach the
new primary by themselves. A primary that dies is never restarted by the supervisor
(it would come back beside a promoted standby): it says to promote.

`Cluster` is also what tests/reliability/test_cluster.py runs, on ports and a directory
of its own. `unit-cert --config F` is the helper that makes a unit's keys and
certificate in a fresh process (cluster_nodes.issue_unit_certificate).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
import threading
from pathlib import Path

from cluster_nodes import REPO, Node, init_units, issue_unit_certificate, units_supported
from cluster_pg import ClusterError, PgPair

RESTART_DELAY_S = 1.0


class Cluster:
    """PostgreSQL primary and standby under `<root>/pg` and one `Node` per port."""

    def __init__(
        self,
        root: Path,
        ports: list[int],
        *,
        pg_ports: tuple[int, int] = (5433, 5434),
        ntp: str = "127.0.0.1:123",
        lease_seconds: float = 10.0,
        overrides: dict[str, dict] | None = None,
        say: object = print,
    ) -> None:
        if len(ports) > 1 and not units_supported():
            raise ClusterError(
                "several nodes need [ledger] unit (issue 16), which this server does not "
                "have yet: run with --nodes 1"
            )
        self.root = root
        self.pg = PgPair(root / "pg", pg_ports)
        self.nodes = [Node(f"node{i + 1}", port, root) for i, port in enumerate(ports)]
        self.ntp = ntp
        self.lease_seconds = lease_seconds
        self.overrides = overrides or {}
        self.say = say if callable(say) else print
        self._stopping = threading.Event()
        self._primary_warned = False

    @property
    def database_url(self) -> str:
        return self.pg.url()

    def setup(self) -> None:
        """Databases, keys, certificates and configuration files: what is missing."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o711)  # the postgres user passes through to pg/
        for line in self.pg.ensure():
            self.say(f"cluster: {line}")
        for node in self.nodes:
            sections = node.settings(self.database_url, self.ntp, self.lease_seconds)
            for name, values in self.overrides.items():
                sections.setdefault(name, {}).update(values)
            node.write_config(sections)
        for line in init_units(self.nodes):
            self.say(f"cluster: {line}")

    def start_nodes(self) -> None:
        for node in self.nodes:
            if node.exited() is None and node.process is not None:
                continue
            node.start()
        for node in self.nodes:
            node.wait_ready()

    def supervise_once(self) -> None:
        """Restart every node that has exited; say so when the primary is down."""
        for node in self.nodes:
            status = node.exited()
            if status is None or self._stopping.is_set():
                continue
            node.restarts += 1
            self.say(f"cluster: {node.unit} exited ({status}); restarting it (see {node.log})")
            node.start()
        self.pg.reload()  # `scripts/cluster promote` may have run meanwhile
        down = self.pg.primary.postmaster_pid() is None
        if down and not self._primary_warned:
            self.say(
                f"cluster: the PostgreSQL primary on 127.0.0.1:{self.pg.primary.port} is "
                "down: run `scripts/cluster promote` to make the standby the primary"
            )
        self._primary_warned = down

    def supervise(self, stop: threading.Event, period: float = 0.5) -> None:
        while not stop.wait(period):
            self.supervise_once()

    def stop(self) -> None:
        """Nodes first (drained, last checkpoints signed), then PostgreSQL."""
        self._stopping.set()
        for node in self.nodes:
            node.signal(signal.SIGCONT)
            node.signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()
        self.pg.stop()

    def describe(self) -> str:
        pg = self.pg
        lines = [
            f"PostgreSQL primary  127.0.0.1:{pg.primary.port}  ({pg.primary.datadir}, log "
            f"{pg.primary.log})",
            f"synchronous standby 127.0.0.1:{pg.standby.port}  ({pg.standby.datadir}, log "
            f"{pg.standby.log})",
            f"database URL        {self.database_url}",
            f'  psql "{self.database_url.split("?")[0]}"   (trust auth on loopback: dev only)',
        ]
        for node in self.nodes:
            lines.append(
                f"{node.unit:<19} {node.url}  logs /ledger/{node.unit}/ and "
                f"/ledger/{node.unit}-ops/  (config {node.config}, log {node.log})"
            )
        lines += [
            f"CA for clients      {self.root / 'certs' / 'ca.pem'}",
            "every node serves every log: GET /ledger/ lists them",
            "after losing the primary: scripts/cluster promote    stop all: Ctrl-C",
        ]
        return "\n".join(lines)


def hold_lock(root: Path) -> int:
    """One supervisor per directory: a flock'd file with our PID."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(root / "cluster.pid", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode().strip() or "?"
        sys.exit(f"cluster: already running on {root} (PID {other})")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def run(args: argparse.Namespace) -> None:
    root = Path(args.dir).resolve()
    lock = hold_lock(root)
    ports = [args.port + i for i in range(args.nodes)]
    pg_ports = tuple(int(p) for p in args.pg_ports.split(","))
    if len(pg_ports) != 2:
        sys.exit("cluster: --pg-ports takes two ports, the first server's and the second's")
    cluster = Cluster(
        root, ports, pg_ports=(pg_ports[0], pg_ports[1]), lease_seconds=args.lease_seconds
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster.setup()
        cluster.start_nodes()
        print(cluster.describe(), flush=True)
        cluster.supervise(stop)
        print("cluster: stopping the nodes, then PostgreSQL", flush=True)
    finally:
        cluster.stop()
        os.close(lock)
    print("cluster: stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=str(REPO / "var" / "cluster"))
    sub = parser.add_subparsers(dest="command")
    promote = sub.add_parser("promote", help="make the standby the primary")
    promote.add_argument("--force", action="store_true", help="even if the primary runs")
    promote.add_argument("--pg-ports", default="5433,5434")
    cert = sub.add_parser("unit-cert", help=argparse.SUPPRESS)
    cert.add_argument("--config", required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--port", type=int, default=3161, help="first node's port")
    parser.add_argument("--pg-ports", default="5433,5434")
    parser.add_argument("--lease-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "unit-cert":
            issue_unit_certificate(Path(args.config))
        elif args.command == "promote":
            ports = [int(p) for p in args.pg_ports.split(",")]
            pair = PgPair(Path(args.dir).resolve() / "pg", (ports[0], ports[1]))
            print(f"cluster: {pair.promote(force=args.force)}")
        else:
            run(args)
    except ClusterError as exc:
        sys.exit(f"cluster: {exc}")


if __name__ == "__main__":
    main()
    sys.exit(0)
