"""A real PostgreSQL server for the tests: one per session, started from the Debian binaries.

`PostgresServer.start()` runs `initdb` into a fresh temporary directory and starts the
server with `pg_ctl` on 127.0.0.1 (a free port) and on a unix socket in that directory,
`fsync` on, trust authentication for the `postgres` role. As root the directory is
handed to the `postgres` system user and every binary runs through
`runuser -u postgres --` (the server refuses to run as root). `stop()` is
`pg_ctl stop -m fast` and removes the directory.

`create_schema()` gives a test a schema of its own in a database the session shares
(a URL whose search_path names it: milliseconds), `create_database()` a database of
its own (CREATE DATABASE from template0: half a second, for tests that change
database settings or drop every session of their database). Either way tests never
see each other's tables.
If PostgreSQL is not installed, `find_bindir` raises `PostgresNotInstalled`; the
fixtures turn that into a failure naming `scripts/bootstrap --test`.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

INSTALL_HINT = (
    "PostgreSQL is not installed (no initdb/pg_ctl found via `pg_config --bindir` or "
    "/usr/lib/postgresql/*/bin): run `scripts/bootstrap --test`, which installs it"
)


SHARED_DATABASE = "ledger_tests"


class PostgresNotInstalled(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    # Debian installs each major version side by side; the newest wins.
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(versions)]
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresNotInstalled(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One throw-away PostgreSQL cluster. Use as a context manager or start()/stop()."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.as_root = os.geteuid() == 0
        self.root: Path | None = None  # the temporary directory: data/ and the socket
        self.port = 0
        self._names = itertools.count(1)
        self._databases: set[str] = set()

    # Paths and URLs

    @property
    def datadir(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root

    def url(self, dbname: str = "postgres", schema: str | None = None) -> str:
        """A libpq URL for `dbname` over TCP on 127.0.0.1, as the `postgres` role; with
        `schema`, its sessions create and find tables in that schema (search_path)."""
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"
        return url if schema is None else f"{url}?options=-csearch_path%3D{schema}"

    def socket_url(self, dbname: str = "postgres") -> str:
        """The same database over the unix socket."""
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    # Lifecycle

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr or result.stdout}"
            )
        return result

    def start(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="tsa-pg-"))
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        for attempt in range(3):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.socket_dir} -c fsync=on "
                "-c max_connections=60 -c shared_buffers=32MB"
            )
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    options,
                )
                break
            except RuntimeError:
                if attempt == 2:  # the port may have been taken meanwhile: try another
                    raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 30) -> str:
        log = (self.root or Path("/nonexistent")) / "server.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.datadir))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Databases

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE...)."""
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (from template0); returns its URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def create_schema(self, name: str | None = None, dbname: str = SHARED_DATABASE) -> str:
        """A new empty schema in a database shared by the session (made on first use);
        returns a URL whose sessions work in it. Milliseconds, where a database costs
        half a second to create and more to flush at shutdown."""
        if dbname not in self._databases:
            self.execute(f'CREATE DATABASE "{dbname}" TEMPLATE template0')
            self._databases.add(dbname)
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE SCHEMA "{name}"', dbname)
        return self.url(dbname, name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server, stopped (fast) and removed on exit."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
