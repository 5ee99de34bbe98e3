"""NtpMonitor against real NTP responders on loopback UDP.

Most tests share one FakeTime between the responder and the monitor: offsets are then
exact, delays zero, and ageing a sample is ``fake.advance(...)``, not a sleep.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator

import ntplib
import pytest

from tests.support.ntp import FakeTime, NtpResponder, ntp_responder
from tsa_server.clock import ntp as ntp_module
from tsa_server.clock.base import UNKNOWN_ERROR, ClockStatus
from tsa_server.clock.ntp import NtpMonitor, NtpSettings, parse_server

TIMEOUT = 1.0  # per server and poll: generous, since only silent servers make us wait
SILENT = 0.2  # the timeout where a server is meant to stay silent: the only real waiting
PRECISION = -20  # the responder's default, log2 s


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def server(fake: FakeTime) -> Iterator[NtpResponder]:
    with ntp_responder(time_source=fake.time) as responder:
        yield responder


def monitor(fake: FakeTime, *servers: NtpResponder | str, **settings: object) -> NtpMonitor:
    addresses = tuple(s if isinstance(s, str) else s.address for s in servers)
    options: dict[str, object] = {"timeout_s": TIMEOUT, "interval_s": 1.0, "max_age_s": 10.0}
    options.update(settings)
    return NtpMonitor(
        NtpSettings(servers=addresses, **options),  # type: ignore[arg-type]
        time_source=fake.time,
        monotonic_source=fake.monotonic,
    )


def closed_port() -> int:
    """A loopback UDP port nothing listens on (the kernel answers port-unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds(status: ClockStatus) -> float:
    return status.error_bound.total_seconds()


def test_responder_answers_an_independent_client() -> None:
    with ntp_responder(offset=0.5, stratum=3) as responder:
        stats = ntplib.NTPClient().request("127.0.0.1", version=3, port=responder.port)
    assert (stats.mode, stats.version, stats.stratum, stats.leap) == (4, 3, 3, 0)
    assert stats.offset == pytest.approx(0.5, abs=0.05)


def test_in_sync_on_real_time() -> None:
    with ntp_responder() as responder:
        clock = NtpMonitor(NtpSettings(servers=(responder.address,), timeout_s=1.0))
        status = clock.poll_once()
    assert status.usable, status.reason
    assert status.reason.startswith(f"in sync with {responder.address} (offset ")
    assert 0 < seconds(status) < 0.1
    assert status.source == responder.address
    assert status.last_sync is not None
    assert abs((clock.now() - status.last_sync).total_seconds()) < 1
    assert clock.now().tzinfo is not None


def test_error_bound_is_offset_plus_half_delays_plus_dispersion(
    fake: FakeTime, server: NtpResponder
) -> None:
    server.offset = -0.003
    server.root_delay = 2**-7
    server.root_dispersion = 2**-9
    server.precision = -10
    status = monitor(fake, server).poll_once()
    assert status.usable
    assert status.offset is not None
    assert status.offset.total_seconds() == pytest.approx(-0.003, abs=2e-6)
    assert seconds(status) == pytest.approx(0.003 + 2**-8 + 2**-9 + 2**-10, abs=2e-6)
    assert status.reason == f"in sync with {server.address} (offset -3 ms)"


def test_bound_grows_with_drift_allowance(fake: FakeTime, server: NtpResponder) -> None:
    clock = monitor(fake, server, drift_ppm=100.0)
    first = seconds(clock.poll_once())
    fake.advance(5.0)
    assert seconds(clock.status()) == pytest.approx(first + 5.0 * 100e-6, abs=1e-6)


@pytest.mark.parametrize("offset", [2.1, -2.1])
def test_offset_too_large_is_unusable(fake: FakeTime, server: NtpResponder, offset: float) -> None:
    server.offset = offset
    status = monitor(fake, server, max_offset_ms=1000.0).poll_once()
    assert not status.usable
    assert status.reason == f"offset {offset:+} s exceeds 1 s"
    assert seconds(status) == pytest.approx(2.1, abs=1e-3)


def test_error_bound_over_stated_accuracy_is_unusable(fake: FakeTime, server: NtpResponder) -> None:
    server.root_dispersion = 0.25
    status = monitor(fake, server, max_error_ms=200.0).poll_once()
    assert not status.usable
    assert status.reason == "error bound 250 ms exceeds 200 ms"


def test_bad_offset_stops_issuance_at_once(fake: FakeTime, server: NtpResponder) -> None:
    clock = monitor(fake, server, timeout_s=SILENT)
    assert clock.poll_once().usable
    server.offset = 0.5
    status = clock.poll_once()
    assert not status.usable
    assert status.reason == "offset +500 ms exceeds 100 ms"
    server.silent = True  # silence proves nothing: the bad measurement stands
    assert clock.poll_once().reason == "offset +500 ms exceeds 100 ms"


def test_no_sample_before_first_poll(fake: FakeTime, server: NtpResponder) -> None:
    status = monitor(fake, server).status()
    assert status == ClockStatus(False, UNKNOWN_ERROR, "no NTP sample yet", None, event="no sample")


def test_silent_server_expires_after_max_age(fake: FakeTime, server: NtpResponder) -> None:
    clock = monitor(fake, server, max_age_s=10.0, timeout_s=SILENT)
    assert clock.poll_once().usable
    server.silent = True
    fake.advance(9.0)
    assert clock.poll_once().usable  # the last good sample still holds
    fake.advance(2.0)
    status = clock.status()  # no poll: ageing alone ends it
    assert not status.usable
    assert status.reason == (
        f"last good NTP sample is 11 s old (max 10 s) ({server.address}: no reply within 0.2 s)"
    )
    assert status.last_sync is not None
    assert status.last_sync.timestamp() == pytest.approx(fake.time() - 11.0)


def test_silent_from_the_start(fake: FakeTime, server: NtpResponder) -> None:
    server.silent = True
    status = monitor(fake, server, timeout_s=SILENT).poll_once()
    assert not status.usable
    assert status.reason == f"no NTP sample yet ({server.address}: no reply within 0.2 s)"
    assert server.requests == 1


def test_nothing_listening(fake: FakeTime) -> None:
    address = f"127.0.0.1:{closed_port()}"
    status = monitor(fake, address).poll_once()
    assert status.reason == f"no NTP sample yet ({address}: connection refused (nothing listens))"


@pytest.mark.parametrize(
    ("knobs", "why"),
    [
        ({"leap": 3}, "server unsynchronised (leap indicator 3)"),
        ({"stratum": 16}, "server unsynchronised (stratum 16)"),
        ({"stratum": 0, "ref_id": b"RATE"}, "kiss-o'-death 'RATE'"),
        ({"zero_transmit": True}, "zero receive or transmit timestamp"),
        # A reply that does not echo our transmit timestamp is not an answer to us.
        ({"bogus_origin": True}, "no reply within 0.2 s"),
    ],
    ids=["leap-3", "stratum-16", "kiss-rate", "zero-transmit", "bogus-origin"],
)
def test_insane_reply_is_no_sample(
    fake: FakeTime, server: NtpResponder, knobs: dict[str, object], why: str
) -> None:
    for name, value in knobs.items():
        setattr(server, name, value)
    clock = monitor(fake, server, timeout_s=SILENT if "bogus_origin" in knobs else TIMEOUT)
    status = clock.poll_once()
    assert not status.usable
    assert status.reason == f"no NTP sample yet ({server.address}: {why})"


def test_unsynchronised_server_keeps_last_sample_until_max_age(
    fake: FakeTime, server: NtpResponder
) -> None:
    clock = monitor(fake, server, max_age_s=10.0)
    assert clock.poll_once().usable
    server.leap = 3
    fake.advance(5.0)
    assert clock.poll_once().usable
    fake.advance(6.0)
    status = clock.status()
    assert not status.usable
    assert "leap indicator 3" in status.reason


def test_clock_step_stops_issuance_until_next_poll(fake: FakeTime, server: NtpResponder) -> None:
    clock = monitor(fake, server, max_error_ms=1000.0)
    assert clock.poll_once().usable
    fake.step(-2.0)
    status = clock.status()
    assert not status.usable
    assert status.event == "step"
    assert status.reason == (
        "system clock stepped 2 s since the last sample: "
        "issuance stopped until the next poll measures it again"
    )
    assert clock.poll_once().usable  # a fresh measurement of the stepped clock is fine


def test_small_clock_step_widens_bound(fake: FakeTime, server: NtpResponder) -> None:
    clock = monitor(fake, server, max_error_ms=500.0)
    assert clock.poll_once().usable
    fake.step(0.6)
    status = clock.status()
    assert not status.usable
    assert status.event == "drift"
    assert status.reason == (
        "error bound 600 ms exceeds 500 ms (system clock stepped 600 ms since the last sample)"
    )


def test_recovery_logged_once_per_transition(
    fake: FakeTime, server: NtpResponder, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[ClockStatus] = []
    clock = NtpMonitor(
        NtpSettings(servers=(server.address,), timeout_s=TIMEOUT, interval_s=1, max_age_s=10),
        time_source=fake.time,
        monotonic_source=fake.monotonic,
        on_change=seen.append,
    )
    caplog.set_level(logging.INFO, logger="tsa.clock")
    clock.poll_once()
    server.offset = 3.0
    for _ in range(3):
        clock.poll_once()
        clock.status()
    server.offset = 0.0
    clock.poll_once()
    clock.poll_once()
    clock.status()
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tsa.clock"]
    in_sync = f"in sync with {server.address} (offset +0 ms)"
    assert records == [
        (logging.INFO, f"clock usable, issuance allowed: {in_sync}"),
        (logging.WARNING, "clock unusable, issuance stopped: offset +3 s exceeds 100 ms"),
        (logging.INFO, f"clock usable, issuance allowed: {in_sync}"),
    ]
    assert [(s.usable, s.reason) for s in seen] == [
        (True, in_sync),
        (False, "offset +3 s exceeds 100 ms"),
        (True, in_sync),
    ]


def test_failing_on_change_does_not_break_the_clock(
    fake: FakeTime, server: NtpResponder, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(status: ClockStatus) -> None:
        raise RuntimeError("ledger down")

    clock = NtpMonitor(
        NtpSettings(servers=(server.address,), timeout_s=TIMEOUT, interval_s=1, max_age_s=10),
        time_source=fake.time,
        monotonic_source=fake.monotonic,
        on_change=boom,
    )
    assert clock.poll_once().usable
    assert "clock on_change callback failed" in caplog.text


def test_one_liar_against_one_good_server_is_no_majority(fake: FakeTime) -> None:
    """Two answering sources that disagree: nobody can tell which is right."""
    with (
        ntp_responder(time_source=fake.time) as good,
        ntp_responder(time_source=fake.time, offset=5.0) as wrong,
        ntp_responder(time_source=fake.time, silent=True) as mute,
    ):
        for need in (1, 2):
            clock = monitor(fake, wrong, mute, good, timeout_s=SILENT, min_good_servers=need)
            status = clock.poll_once()
            assert not status.usable
            assert status.event == "no majority"
            assert status.reason == (
                f"no majority: 1 of 2 answering sources agree "
                f"({wrong.address} +5 s, {good.address} +0 ms)"
            )
            assert status.falsetickers == ()


def test_best_of_several_good_samples_wins(fake: FakeTime) -> None:
    with (
        ntp_responder(time_source=fake.time, root_dispersion=2**-6) as far,
        ntp_responder(time_source=fake.time, root_dispersion=2**-12) as near,
    ):
        status = monitor(fake, far, near).poll_once()
    assert status.source == near.address
    assert seconds(status) == pytest.approx(2**-12 + 2.0**PRECISION, abs=2e-6)


def test_run_loop_survives_failing_polls(
    fake: FakeTime,
    server: NtpResponder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_query = ntp_module.query
    calls = 0

    def flaky(*args: object, **kwargs: object) -> ntp_module.NtpSample:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("boom")
        return real_query(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ntp_module, "query", flaky)
    clock = monitor(fake, server, interval_s=0.01)

    async def scenario() -> None:
        task = asyncio.create_task(clock.run())
        deadline = time.monotonic() + 5
        while not clock.status().usable and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await clock.stop()

    caplog.set_level(logging.DEBUG, logger="tsa.clock")
    asyncio.run(scenario())
    assert clock.status().usable
    failures = [r for r in caplog.records if "NTP poll failed" in r.getMessage()]
    # Logged once, without a traceback; the repeats go to DEBUG.
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in failures] == [
        (logging.ERROR, "NTP poll failed: RuntimeError: boom", None),
        (logging.DEBUG, "NTP poll failed: RuntimeError: boom", None),
        (logging.DEBUG, "NTP poll failed: RuntimeError: boom", None),
    ]


def test_start_stop_as_async_context_manager(fake: FakeTime, server: NtpResponder) -> None:
    clock = monitor(fake, server, interval_s=0.01)

    async def scenario() -> int:
        async with clock:
            assert clock.status().usable  # the first sample is taken before serving
            before = server.requests
            await asyncio.sleep(0.2)
            return server.requests - before

    assert asyncio.run(scenario()) >= 3
    stopped_at = server.requests
    time.sleep(0.05)
    assert server.requests == stopped_at


def test_aiohttp_cleanup_ctx(fake: FakeTime, server: NtpResponder) -> None:
    from aiohttp import web

    clock = monitor(fake, server)
    app = web.Application()
    app.cleanup_ctx.append(clock.cleanup_ctx)

    async def scenario() -> bool:
        runner = web.AppRunner(app)
        await runner.setup()
        usable = clock.status().usable
        await runner.cleanup()
        return usable

    assert asyncio.run(scenario())


def test_start_warns_when_unusable(
    fake: FakeTime, server: NtpResponder, caplog: pytest.LogCaptureFixture
) -> None:
    server.leap = 3
    clock = monitor(fake, server)

    async def scenario() -> ClockStatus:
        async with clock:
            return clock.status()

    assert not asyncio.run(scenario()).usable
    assert "clock unusable at start: no NTP sample yet" in caplog.text


def test_now_reads_the_time_source(fake: FakeTime, server: NtpResponder) -> None:
    assert monitor(fake, server).now().timestamp() == fake.time()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1", ("127.0.0.1", 123)),
        ("127.0.0.1:1123", ("127.0.0.1", 1123)),
        ("ntp.example", ("ntp.example", 123)),
        ("[::1]:1123", ("::1", 1123)),
        ("[::1]", ("::1", 123)),
        ("::1", ("::1", 123)),
    ],
)
def test_parse_server(text: str, parsed: tuple[str, int]) -> None:
    assert parse_server(text) == parsed


@pytest.mark.parametrize("text", ["", ":123", "host:", "host:0", "host:70000", "[::1", "[::1]x"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text)


@pytest.mark.parametrize(
    "settings",
    [
        {"servers": ()},
        {"servers": ("bad:port",)},
        {"interval_s": 0},
        {"timeout_s": -1},
        {"max_error_ms": 0},
        {"drift_ppm": -1},
        {"min_good_servers": 2},
        {"interval_s": 60, "max_age_s": 60},
    ],
)
def test_settings_fail_closed(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NtpSettings(**settings)  # type: ignore[arg-type]


@pytest.mark.interop
def test_against_local_ntp_daemon() -> None:
    """The machine's NTP daemon, which scripts/test and scripts/run start (scripts/local-ntp)."""
    sample = ntp_module.query("127.0.0.1:123", timeout=1.0)
    assert 1 <= sample.stratum <= 15
    # scripts/local-ntp's chrony has no upstream: it serves its local clock (refid LOCAL),
    # which a production setting refuses and the development setting accepts.
    assert sample.local_reference
    refused = NtpMonitor(NtpSettings()).poll_once()
    assert not refused.usable and "local clock" in refused.reason
    status = NtpMonitor(NtpSettings(accept_local_reference=True)).poll_once()
    assert status.usable, status.reason


@pytest.mark.parametrize(("stratum", "ref_id"), [(10, b"\x7f\x7f\x01\x01"), (1, b"LOCL")])
def test_a_local_clock_reference_is_refused_unless_accepted(
    fake: FakeTime, server: NtpResponder, stratum: int, ref_id: bytes
) -> None:
    server.stratum, server.ref_id = stratum, ref_id
    strict = monitor(fake, server)
    status = strict.poll_once()
    assert not status.usable and "local clock" in status.reason
    lenient = NtpMonitor(
        NtpSettings(servers=(server.address,), accept_local_reference=True),
        time_source=fake.time,
        monotonic_source=fake.monotonic,
    )
    assert lenient.poll_once().usable
