"""PostgreSQL for scripts/cluster: a primary and a synchronous streaming standby on this
machine, from Debian's binaries, on loopback only.

`PgPair(root, ports)` keeps two data directories under `root` (`a/` and `b/`) and a
small state file (`pair.json`) saying which one is the primary. `ensure()` makes what
is missing and starts what is not running: initdb of the primary (fsync on,
`synchronous_commit = on`, the standby named in `synchronous_standby_names`), the
role and database `tsa`, then the standby by `pg_basebackup -R` streaming from it.
Re-running it is harmless; after a promotion the old primary's directory, which may
hold commits the new primary never saw, is rebuilt as the new primary's standby.

`promote()` turns the standby into the primary (`pg_ctl promote`); with no standby
left, its commits no longer wait for a second copy (it says so). `kill_primary()` is
what losing the machine looks like (SIGKILL to the whole postmaster process group).
As root every binary runs as the `postgres` user (`runuser -u postgres --`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

DATABASE = "tsa"
ROLE = "tsa"
STANDBY_NAME = "tsa_standby"


class ClusterError(RuntimeError):
    """Something the operator must fix; the message says what."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl, pg_basebackup and postgres (the newest
    Debian version, else `pg_config --bindir`)."""
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates = [Path(p) for p in reversed(versions)]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if all((bindir / t).is_file() for t in ("initdb", "pg_ctl", "pg_basebackup", "postgres")):
            return bindir
    raise ClusterError(
        "PostgreSQL is not installed (no initdb/pg_ctl/pg_basebackup in "
        "/usr/lib/postgresql/*/bin): run `scripts/bootstrap --test`, which installs it"
    )


@dataclass
class Server:
    """One PostgreSQL server of the pair: its data directory and port."""

    name: str
    datadir: Path
    port: int

    @property
    def log(self) -> Path:
        return self.datadir.parent / f"{self.name}.log"

    def postmaster_pid(self) -> int | None:
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:  # a killed postmaster may linger as a zombie until its parent reaps it
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return None if state in ("Z", "X") else pid

    def is_standby(self) -> bool:
        return (self.datadir / "standby.signal").exists()

    def admin_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}?connect_timeout=3"


class PgPair:
    """The primary and its synchronous standby under `root`, on `ports` (a's, b's)."""

    def __init__(self, root: Path, ports: tuple[int, int] = (5433, 5434)) -> None:
        self.root = root
        self.bindir = find_bindir()
        self.as_root = os.geteuid() == 0
        self.state_file = root / "pair.json"
        self.servers = {
            "a": Server("a", root / "a", ports[0]),
            "b": Server("b", root / "b", ports[1]),
        }
        self.primary_name = "a"
        self.reload()

    def reload(self) -> None:
        """Which server is the primary, as the state file says (`promote` changes it)."""
        self.primary_name = self._state().get("primary", "a")

    # What clients use

    @property
    def primary(self) -> Server:
        return self.servers[self.primary_name]

    @property
    def standby(self) -> Server:
        return self.servers["b" if self.primary_name == "a" else "a"]

    def url(self) -> str:
        """The libpq URL every node uses: both hosts, the writable one chosen."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.servers.values())
        return (
            f"postgresql://{ROLE}@{hosts}/{DATABASE}"
            "?target_session_attrs=read-write&connect_timeout=3"
        )

    # Running the binaries

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            self._command(tool, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # Ctrl-C in the terminal is ours to pass on, in order
        )
        if result.returncode != 0:
            raise ClusterError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def _state(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({"primary": self.primary_name}) + "\n")

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.as_root:
            shutil.chown(path, "postgres", "postgres")

    # Lifecycle

    def ensure(self) -> list[str]:
        """Make and start whatever is missing; returns what was done, one line each."""
        done: list[str] = []
        self._own(self.root)  # the servers' logs go beside their data directories
        primary, standby = self.primary, self.standby
        if not (primary.datadir / "PG_VERSION").exists():
            self._own(primary.datadir)
            self._run(
                "initdb", "-D", str(primary.datadir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C",
            )  # fmt: skip
            done.append(f"initdb {primary.datadir}")
        if primary.is_standby():
            raise ClusterError(
                f"{primary.datadir} is a standby but {self.state_file} names it the primary: "
                "run `scripts/cluster promote` if the other server is lost"
            )
        if self._start(primary):
            done.append(f"started the primary on 127.0.0.1:{primary.port}")
        self._create_database(done)
        if not standby.is_standby() or not (standby.datadir / "PG_VERSION").exists():
            # Missing, or the old primary after a promotion: rebuilt from the primary.
            self._stop(standby)
            shutil.rmtree(standby.datadir, ignore_errors=True)
            self._own(standby.datadir)
            conninfo = (
                f"host=127.0.0.1 port={primary.port} user=postgres application_name={STANDBY_NAME}"
            )
            self._run(
                "pg_basebackup", "-D", str(standby.datadir), "-d", conninfo, "-R",
                "-X", "stream", "-c", "fast",
            )  # fmt: skip
            done.append(f"pg_basebackup {standby.datadir} -R from 127.0.0.1:{primary.port}")
        if self._start(standby):
            done.append(f"started the synchronous standby on 127.0.0.1:{standby.port}")
        self._save()
        self.wait_streaming(sync=False)
        self._require_standby(primary, STANDBY_NAME, done)
        self.wait_streaming()
        return done

    def _start(self, server: Server) -> bool:
        if server.postmaster_pid() is not None:
            return False
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={server.port} "
            f"-c unix_socket_directories={server.datadir} -c fsync=on "
            "-c synchronous_commit=on -c max_connections=100 -c shared_buffers=32MB "
            "-c wal_level=replica -c max_wal_senders=4 -c hot_standby=on"
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(server.datadir),
            "-l", str(server.log), "-o", options,
        )  # fmt: skip
        return True

    def _stop(self, server: Server) -> None:
        if server.postmaster_pid() is not None:
            self._run("pg_ctl", "stop", "-m", "fast", "-w", "-t", "60", "-D", str(server.datadir))

    def _require_standby(self, server: Server, name: str, done: list[str]) -> None:
        """Make `server` wait for the standby `name` ("": for none) before it answers a
        commit: set once its standby streams (commits would wait for it until then)."""
        with psycopg.connect(server.admin_url(), autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('synchronous_standby_names')").fetchone()
            if row and row[0] == name:
                return
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{name}'")
            conn.execute("SELECT pg_reload_conf()")
        if name:
            done.append(f"127.0.0.1:{server.port}: synchronous_standby_names = '{name}'")

    def _create_database(self, done: list[str]) -> None:
        with psycopg.connect(self.primary.admin_url(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
                return
            conn.execute(f"CREATE ROLE {ROLE} LOGIN")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE} TEMPLATE template0")
            done.append(f"role and database {ROLE!r}")

    def wait_streaming(self, timeout: float = 30, *, sync: bool = True) -> None:
        """Until the standby streams from the primary (`sync`: as its synchronous one)."""
        deadline = time.monotonic() + timeout
        query = "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s"
        while True:
            try:
                with psycopg.connect(self.primary.admin_url(), autocommit=True) as conn:
                    row = conn.execute(query, (STANDBY_NAME,)).fetchone()
                if row and (row[0] == "sync" or not sync):
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"the standby did not start streaming; see {self.standby.log}")
            time.sleep(0.2)

    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster and every backend: the machine is lost."""
        pid = self.primary.postmaster_pid()
        if pid is not None:
            os.killpg(os.getpgid(pid), signal.SIGKILL)

    def promote(self, *, force: bool = False) -> str:
        """Promote the standby after the primary is lost (refused while the primary runs,
        unless `force`: two primaries would then take commits)."""
        standby = self.standby
        if not standby.is_standby():
            raise ClusterError(f"{standby.datadir} is not a standby: nothing to promote")
        if self.primary.postmaster_pid() is not None and not force:
            raise ClusterError(
                f"the primary on 127.0.0.1:{self.primary.port} is still running: stop it "
                "first (promoting now would leave two primaries), or use --force"
            )
        self._run("pg_ctl", "promote", "-w", "-t", "60", "-D", str(standby.datadir))
        self._require_standby(standby, "", [])  # none is left to wait for
        self.primary_name = standby.name
        self._save()
        return (
            f"promoted 127.0.0.1:{standby.port} to primary; it has no standby now, so its "
            "commits are on one server only until `scripts/cluster` runs again (which "
            "rebuilds the old primary as its standby)"
        )

    def stop(self) -> None:
        """Stop both servers (fast shutdown), the standby last."""
        for server in (self.primary, self.standby):
            try:
                self._stop(server)
            except ClusterError:
                if server.postmaster_pid() is not None:
                    os.kill(server.postmaster_pid() or 0, signal.SIGQUIT)
