"""The clock rules end to end (issue 17 item 6): a real `tsa serve` measuring its clock
against three real NTP responders on loopback, one or two of which lie. /tsr grants
while one liar is outvoted, refuses with timeNotAvailable when the majority says the
clock is off, and the operations log and the metrics name what happened."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.store.sqlite import SqliteReader
from tests.support.ntp import NtpResponder, ntp_responder
from tests.support.queries import failure_of, make_request
from tests.support.tsa import Hsm, TsaServer, free_port


@pytest.fixture
def three() -> Iterator[list[NtpResponder]]:
    with ExitStack() as stack:
        yield [stack.enter_context(ntp_responder()) for _ in range(3)]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def outcome(server: TsaServer) -> tuple[str, frozenset[str]]:
    return failure_of(server.post_query(make_request(b"agreement"))[2])


def clock_events(server: TsaServer) -> list[dict]:
    reader = SqliteReader(server.workdir / "ops.sqlite")
    try:
        found = (json.loads(e.token) for e in reader.entries())
        return [e for e in found if e["kind"] == "clock"]
    finally:
        reader.close()


def falseticker_gauges(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    gauges: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tsa_clock_falseticker":
                gauges[sample.labels["server"]] = sample.value
            elif sample.name == "tsa_clock_agreeing_sources":
                gauges["agreeing"] = sample.value
    return gauges


def test_one_liar_is_outvoted_and_a_lying_majority_stops_tsr(
    tmp_path: Path, hsm: Hsm, three: list[NtpResponder]
) -> None:
    honest, liar, swayed = three
    liar.offset = 5.0
    metrics_port = free_port()
    server = TsaServer(
        tmp_path / "srv",
        hsm,
        honest.address,
        clock={"servers": [r.address for r in three], "timeout_s": 0.3},
        metrics={"host": "127.0.0.1", "port": metrics_port},
    )
    try:
        server.start()
        assert outcome(server) == ("granted", frozenset())
        synced = clock_events(server)[0]
        assert (synced["usable"], synced["event"]) == (True, "synced")
        assert synced["falsetickers"] == [liar.address] and synced["agreeing"] == 2
        assert falseticker_gauges(metrics_port) == {liar.address: 1.0, "agreeing": 2.0}

        swayed.offset = 5.0  # now two sources agree that our clock is 5 s slow
        wait_for(lambda: outcome(server) == ("rejection", frozenset({"time_not_available"})))
        status, _, body = server.get("/readyz")
        assert status == 503
        assert "offset +5 s exceeds 100 ms (2 of 3 answering sources agree)" in body.decode()
        stopped = clock_events(server)[-1]
        assert (stopped["usable"], stopped["event"]) == (False, "offset")
        assert stopped["falsetickers"] == [honest.address]

        liar.offset = swayed.offset = 0.0
        wait_for(lambda: outcome(server) == ("granted", frozenset()))
        wait_for(lambda: clock_events(server)[-1]["event"] == "regained")
        assert "falsetickers" not in clock_events(server)[-1]
    finally:
        server.stop()
