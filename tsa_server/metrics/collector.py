"""Metrics read when Prometheus scrapes, from state the server keeps anyway: nothing is
counted for them on the hot path beyond the issuer's own integers.

The evidence totals (deposits, credits consumed, webhook deliveries awaiting a retry) are
three `COUNT`/`SUM` queries on a connection of the scrape's own (read-only on SQLite; on
PostgreSQL, every node reports the cluster's totals), in the scrape's
thread (web/metrics.py renders off the event loop); a database that cannot be read leaves
them out of that scrape and counts `tsa_metrics_scrape_errors_total`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger.store.base import SignedCheckpoint
from tsa_server.clock.base import Clock
from tsa_server.database import Database
from tsa_server.errors import FailureInfo
from tsa_server.issuance.issuer import Issuer

#: failInfo label values: the RFC 3161 names (PKIFailureInfo), a fixed set.
FAIL_INFO = {
    FailureInfo.BAD_ALG: "badAlg",
    FailureInfo.BAD_REQUEST: "badRequest",
    FailureInfo.BAD_DATA_FORMAT: "badDataFormat",
    FailureInfo.TIME_NOT_AVAILABLE: "timeNotAvailable",
    FailureInfo.UNACCEPTED_POLICY: "unacceptedPolicy",
    FailureInfo.UNACCEPTED_EXTENSION: "unacceptedExtension",
    FailureInfo.ADD_INFO_NOT_AVAILABLE: "addInfoNotAvailable",
    FailureInfo.SYSTEM_FAILURE: "systemFailure",
}


class Checkpoints:
    """The latest signed checkpoint of each log, as its publisher reports it."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, float]] = {}  # log -> (size, unix time)
        self._lock = threading.Lock()

    def record(self, log: str, checkpoint: SignedCheckpoint | None) -> None:
        if checkpoint is None:
            return
        at = checkpoint.signed_at if checkpoint.signed_at is not None else time.time()
        with self._lock:
            self._latest[log] = (checkpoint.size, float(at))

    def latest(self) -> dict[str, tuple[int, float]]:
        with self._lock:
            return dict(self._latest)


@dataclass(frozen=True)
class EvidenceTotals:
    deposits: int  # items certified, ever
    credits_consumed: int  # units of `consume` credit entries
    webhook_backlog: int  # deliveries tried, neither delivered nor given up


EVIDENCE_QUERIES = (
    "SELECT COUNT(*) FROM items",
    "SELECT COALESCE(SUM(units), 0) FROM credit_entries WHERE kind = 'consume'",
    "SELECT COUNT(*) FROM webhook_deliveries WHERE delivered_at IS NULL AND given_up_at IS NULL",
)


def sqlite_evidence_totals(path: Path) -> Callable[[], EvidenceTotals | None]:
    """The totals from the evidence SQLite file, read-only; None before it exists."""

    def read() -> EvidenceTotals | None:
        if not path.exists():
            return None
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0) as conn:
            values = [int(conn.execute(q).fetchone()[0]) for q in EVIDENCE_QUERIES]
        conn.close()
        return EvidenceTotals(*values)

    return read


def database_evidence_totals(open_db: Callable[[], Database]) -> Callable[[], EvidenceTotals]:
    """The totals from the evidence tables in a shared database (PostgreSQL), on a
    connection of the scraping thread's own, opened at the first scrape."""
    opened: list[Database] = []
    lock = threading.Lock()

    def read() -> EvidenceTotals:
        with lock:
            if not opened:
                opened.append(open_db())
        conn = opened[0].connection()
        return EvidenceTotals(*[int(conn.execute(q).fetchone()[0]) for q in EVIDENCE_QUERIES])

    return read


class ServerCollector(Collector):
    """Everything read at scrape time (see the module doc)."""

    def __init__(
        self,
        issuer: Issuer,
        clock: Clock,
        checkpoints: Checkpoints,
        evidence: Callable[[], EvidenceTotals | None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._clock = clock
        self._checkpoints = checkpoints
        self._evidence = evidence
        self._wall_clock = wall_clock
        self._scrape_errors = 0

    def collect(self) -> Iterator[Metric]:
        yield from self._issuance()
        yield from self._clock_metrics()
        yield from self._ledger()
        yield from self._evidence_metrics()
        yield CounterMetricFamily(
            "tsa_metrics_scrape_errors",
            "Scrapes that could not read the evidence database",
            value=self._scrape_errors,
        )

    def _issuance(self) -> Iterator[Metric]:
        issuer = self._issuer
        yield CounterMetricFamily(
            "tsa_tokens_granted", "Time-stamp tokens granted", value=issuer.issued
        )
        rejected = CounterMetricFamily(
            "tsa_tokens_rejected", "Time-stamp requests refused, by failInfo", labels=["fail_info"]
        )
        failures = dict(issuer.failures)
        for failure, name in FAIL_INFO.items():
            rejected.add_metric([name], failures.get(failure, 0))
        yield rejected
        yield GaugeMetricFamily(
            "tsa_issuance_batches_in_flight",
            "Batches sequenced and not yet committed (signing or committing)",
            value=issuer.in_flight,
        )
        yield _gauge("tsa_ledger_entries", "Entries durably in the token ledger", issuer.next_index)
        retires_at = issuer.keys.current.retires_at
        if retires_at is not None:
            yield _gauge(
                "tsa_signing_key_retires_timestamp_seconds",
                "Unix time the active signing key stops signing (usage period end or "
                "certificate expiry, whichever is first)",
                retires_at.timestamp(),
            )

    def _clock_metrics(self) -> Iterator[Metric]:
        status = self._clock.status()
        yield _gauge("tsa_clock_usable", "1 when tokens may be issued now", int(status.usable))
        if status.offset is not None:
            yield _gauge(
                "tsa_clock_offset_seconds",
                "Measured reference minus local time of the last good sample",
                status.offset.total_seconds(),
            )
        if status.usable:
            yield _gauge(
                "tsa_clock_error_bound_seconds",
                "Bound on the clock's error now (the accuracy a token states)",
                status.error_bound.total_seconds(),
            )
        if status.agreeing is not None:
            yield _gauge(
                "tsa_clock_agreeing_sources",
                "NTP sources whose measurements agreed in the last poll with answers",
                status.agreeing,
            )
        # Labelled by server address: a set bounded by [clock] servers.
        dropped = GaugeMetricFamily(
            "tsa_clock_falseticker",
            "1 for each NTP source the last poll dropped as a falseticker",
            labels=["server"],
        )
        for server in status.falsetickers:
            dropped.add_metric([server], 1)
        yield dropped
        if status.last_sync is not None:
            age = (datetime.now(UTC) - status.last_sync).total_seconds()
            yield _gauge(
                "tsa_clock_last_sample_age_seconds",
                "Seconds since the last good clock sample",
                max(0.0, age),
            )

    def _ledger(self) -> Iterator[Metric]:
        latest = self._checkpoints.latest()
        size = GaugeMetricFamily(
            "tsa_ledger_checkpoint_size", "Size of the latest signed checkpoint", labels=["log"]
        )
        stamp = GaugeMetricFamily(
            "tsa_ledger_checkpoint_timestamp_seconds",
            "Unix time of the latest signed checkpoint",
            labels=["log"],
        )
        age = GaugeMetricFamily(
            "tsa_ledger_checkpoint_age_seconds",
            "Seconds since the latest signed checkpoint",
            labels=["log"],
        )
        now = self._wall_clock()
        for log, (checkpoint_size, at) in sorted(latest.items()):
            size.add_metric([log], checkpoint_size)
            stamp.add_metric([log], at)
            age.add_metric([log], max(0.0, now - at))
        yield from (size, stamp, age)

    def _evidence_metrics(self) -> Iterator[Metric]:
        if self._evidence is None:
            return
        try:
            totals = self._evidence()
        except Exception:  # noqa: BLE001 - a scrape never fails for this
            self._scrape_errors += 1
            return
        if totals is None:
            return
        yield CounterMetricFamily(
            "tsa_deposits", "Evidence items certified (deposits)", value=totals.deposits
        )
        yield CounterMetricFamily(
            "tsa_credits_consumed",
            "Credit units consumed by deposits",
            value=totals.credits_consumed,
        )
        yield _gauge(
            "tsa_webhook_backlog",
            "Webhook deliveries tried and still to be retried",
            totals.webhook_backlog,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
