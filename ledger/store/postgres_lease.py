"""A log's writer lease in PostgreSQL (issue 16): one writer per log across nodes, and a
paused or partitioned writer replaced without ever writing again.

The lease is four columns of the log's `ledger_logs` row: the holder (a random id per
store object), until when it holds, and the holder's session (backend pid and start).
`acquire` takes the lease when it is free, expired, already ours, or held by a session
that no longer exists (a killed process's connection closes at once, so a restarted
node need not wait; a session of another role whose start time is hidden counts as
alive); otherwise the log is "in use by another writer". The holder renews
the lease every third of its length from a thread of its own (`Keeper`) and with every
append. Holding the lease is what lets a writer *start*; what stops a deposed one is
the epoch: a takeover claims a new epoch (from the `ledger_epochs` sequence, unique
across logs), and every append checks, under the row's lock, in its own transaction,
that the epoch is still the writer's. A writer paused past its lease (SIGSTOP, a long GC,
a partition) can therefore be replaced, and its appends after it resumes are refused.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from collections.abc import Callable

from ledger.errors import LedgerWriteError
from ledger.store.postgres_schema import Connection

log = logging.getLogger("ledger.store.postgres")

_SESSION = (
    "pg_backend_pid(), (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())"
)
_HELD_BY_ANOTHER = """
SELECT lease_until, lease_holder FROM ledger_logs
WHERE log = %s AND lease_holder IS NOT NULL AND lease_holder <> %s AND lease_until > now()
  AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = lease_pid
              AND (a.backend_start IS NULL OR a.backend_start = lease_session_start))
"""
_TAKE = f"""
UPDATE ledger_logs SET lease_holder = %s, lease_until = now() + make_interval(secs => %s),
    (lease_pid, lease_session_start) = (SELECT {_SESSION})
WHERE log = %s
"""


def new_holder() -> str:
    """An id for one writer: the host for people reading the row, random for uniqueness."""
    return f"{socket.gethostname()}/{secrets.token_hex(6)}"


def acquire(conn: Connection, log_name: str, holder: str, seconds: float, force: bool) -> None:
    """Take the lease of `log_name` for `holder` in the caller's transaction, unless a
    live writer holds it (`force`: take it anyway; the epoch fence deposes that one)."""
    conn.execute("SELECT 1 FROM ledger_logs WHERE log = %s FOR UPDATE", (log_name,))
    if not force:
        held = conn.execute(_HELD_BY_ANOTHER, (log_name, holder)).fetchone()
        if held is not None:
            raise LedgerWriteError(
                f"the ledger log {log_name!r} is in use by another writer ({held[1]}, "
                f"lease until {held[0]:%Y-%m-%d %H:%M:%S%z})"
            )
    conn.execute(_TAKE, (holder, seconds, log_name))


def renew(conn: Connection, log_name: str, holder: str, seconds: float, epoch: int) -> bool:
    """Extend the lease if `holder` still writes `log_name` at `epoch` (False: deposed)."""
    cursor = conn.execute(
        _TAKE + " AND lease_holder = %s AND epoch = %s",
        (holder, seconds, log_name, holder, epoch),
    )
    return cursor.rowcount == 1


def release(conn: Connection, log_name: str, holder: str) -> None:
    """Give the lease up (a clean stop): the next writer need not wait for it to expire."""
    conn.execute(
        "UPDATE ledger_logs SET lease_until = now() WHERE log = %s AND lease_holder = %s",
        (log_name, holder),
    )


class Keeper:
    """Renews a lease every `period` seconds in a daemon thread until stopped.
    `renew_once` returns False once the writer is deposed; the keeper then stops."""

    def __init__(self, renew_once: Callable[[], bool], period: float, name: str) -> None:
        self._renew_once = renew_once
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                if not self._renew_once():
                    log.error("the ledger lease was taken over: this writer is deposed")
                    return
            except Exception as exc:  # noqa: BLE001 - the next period retries
                log.warning("ledger lease not renewed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)
