"""Cluster-wide background jobs (issue 16): the renewal scheduler and the webhook
dispatcher run on every node, but each round runs on one node only, the holder of the
job's lease in the shared `job_leases` table. A node takes the lease when it is free,
expired, or already its own, and renews it with every round; a node that stops (or is
paused) past the lease hands the job to the next node that looks. On one machine the
one server always holds it. The `JobStore` protocol and its SQL implementation."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import Protocol

from tsa_server.accounts.times import ts
from tsa_server.evidence.store.base import EvidenceFile

#: The shortest lease of a job: a node that stops hands the job on after this long.
JOB_LEASE_MIN = timedelta(seconds=30)


def job_holder(unit: str = "") -> str:
    """This node as a job holder: its host and `[ledger] unit`, stable across restarts,
    so a restarted server takes its own lease back at once."""
    return f"{socket.gethostname()}/{unit or 'tsa'}"


class JobStore(Protocol):
    """Leases of the cluster's background jobs."""

    def hold_job(self, name: str, holder: str, now: datetime, until: datetime) -> bool: ...


class SqlJobStore(EvidenceFile):
    """The job_leases table."""

    def hold_job(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew the lease of job `name` for `holder` until `until`, unless
        another holder's lease runs past `now`; whether `holder` holds it."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO job_leases (name, holder, until) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " until = excluded.until"
                " WHERE job_leases.holder = excluded.holder OR job_leases.until <= ?",
                (name, holder, ts(until), ts(now)),
            )
            row = conn.execute("SELECT holder FROM job_leases WHERE name = ?", (name,)).fetchone()
        return row is not None and row[0] == holder
