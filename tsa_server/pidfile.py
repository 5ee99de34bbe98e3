"""One server per state directory: `tsa serve` holds an exclusive lock on [server]
pid_file (var/tsa.pid) for as long as it runs, with its PID inside, so that a second
`tsa serve` or `scripts/run` on the same var/ stops at once and says which process is
already serving, instead of failing later on a ledger lock. The lock dies with the
process (flock), so a crash leaves nothing to clean up; a clean stop removes the file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tsa_server.errors import TSAError


class AlreadyRunning(TSAError):
    """Another server holds the PID file."""


class PidFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> PidFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"{self.path} is in use by another process: a server is already running on "
                f"this state directory (PID {holder}); stop it first (kill -TERM {holder})"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # still held: no other server wrote it since
        os.close(self._fd)
        self._fd = None
