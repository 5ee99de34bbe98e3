"""Metrics observed as things happen: per HTTP request (one histogram observation and one
counter increment, on label children cached by route), per signed batch and per commit.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

#: Request latency buckets, seconds: a granted token takes a few milliseconds.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Batch sizes up to [tsa] max_batch (4096 at most).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
#: Signing and commit durations, seconds.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
#: The route label of a request that matched no route (404s, unparseable requests).
UNMATCHED = "unmatched"
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class HttpMetrics:
    """Latency per route and method, and responses per route, method and status class."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "tsa_http_request_duration_seconds",
            "Time from a request's headers to its complete response, by route pattern",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.responses = Counter(
            "tsa_http_responses",
            "Responses by route pattern, method and status class",
            ["route", "method", "code"],
            registry=registry,
        )
        # (route, method) -> (latency child, one counter child per status class)
        self._children: dict[tuple[str, str], tuple[Histogram, tuple[Counter, ...]]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._children.get((route, method))
        if children is None:
            children = self._children[(route, method)] = (
                self.latency.labels(route, method),
                tuple(self.responses.labels(route, method, c) for c in _CLASSES),
            )
        children[0].observe(seconds)
        index = status // 100 - 1
        if 0 <= index < 5:
            children[1][index].inc()


class IssuanceMetrics:
    """The issuance pipeline's observer (issuance/observer.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_size = Histogram(
            "tsa_issuance_batch_size",
            "Requests signed together in one batch",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.signing = Histogram(
            "tsa_issuance_signing_duration_seconds",
            "Time to sign one batch in the HSM",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.commit = Histogram(
            "tsa_ledger_commit_duration_seconds",
            "Time of one durable ledger commit (one or more batches)",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.committed_tokens = Counter(
            "tsa_ledger_committed_tokens",
            "Tokens appended to the ledger by durable commits",
            registry=registry,
        )
        self.hsm_errors = Counter(
            "tsa_hsm_errors",
            "Signing failures of the HSM: batches and readiness probes",
            registry=registry,
        )

    def signed(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.signing.observe(seconds)

    def committed(self, tokens: int, seconds: float) -> None:
        self.commit.observe(seconds)
        self.committed_tokens.inc(tokens)

    def signer_failed(self) -> None:
        self.hsm_errors.inc()
