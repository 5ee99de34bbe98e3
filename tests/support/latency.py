"""/tsr latency under an attack, measured against a baseline taken in the same test:
the machine is shared and noisy, so only figures of one run are compared."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from tests.support.queries import failure_of, make_request
from tests.support.tsa import TsaServer


def tsr_latency(server: TsaServer) -> float:
    """Seconds one fresh time-stamp request takes; it must be granted."""
    started = time.monotonic()
    status, _, body = server.post_query(make_request(b"probe %d" % time.monotonic_ns()))
    assert status == 200 and failure_of(body)[0] in ("granted", "granted_with_mods"), body
    return time.monotonic() - started


def wait_issuing(server: TsaServer, timeout: float = 15.0) -> None:
    """Wait until the server says it is ready to issue (/readyz: clock in sync, signer
    and ledger usable). A shared server's clock may be catching up after an earlier
    test loaded the machine; latency is measured only once it issues."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = server.get("readyz")
        if status == 200:
            return
        assert time.monotonic() < deadline, f"not ready within {timeout} s: {body!r}"
        time.sleep(0.1)


def baseline(server: TsaServer, samples: int = 15) -> float:
    """Median unloaded latency, after a short warm-up."""
    wait_issuing(server)
    for _ in range(3):
        tsr_latency(server)
    return statistics.median(tsr_latency(server) for _ in range(samples))


def latencies_while(
    server: TsaServer,
    attack: Callable[[threading.Event], None],
    *,
    threads: int,
    samples: int = 15,
    settle_s: float = 0.5,
) -> list[float]:
    """/tsr latencies sampled while ``threads`` threads run ``attack(stop)`` (each
    returns once ``stop`` is set)."""
    stop = threading.Event()
    attackers = [threading.Thread(target=attack, args=(stop,)) for _ in range(threads)]
    for thread in attackers:
        thread.start()
    try:
        time.sleep(settle_s)
        return [tsr_latency(server) for _ in range(samples)]
    finally:
        stop.set()
        for thread in attackers:
            thread.join(60)
