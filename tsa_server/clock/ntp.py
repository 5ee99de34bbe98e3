"""An NTP monitor that decides whether tokens may be issued, and with what accuracy.

The monitor does not keep time. ``now()`` is the system clock; disciplining that clock
(slewing, frequency, leap seconds) is the OS NTP daemon's job, normally chrony. A
correction applied here would be a second time-keeping loop fighting the first, would
make genTime disagree with every other timestamp on the machine, and would hang on
single noisy samples. Instead the monitor *measures* the system clock against NTP
servers, refuses issuance when the measurement is missing, stale or bad, and states
how wrong genTime can be: a token saying "genTime +- accuracy" stays true without any
correction, because the accuracy includes the measured offset.

Error bound of one sample, in seconds (RFC 5905 notation)::

    |theta| + delta/2 + root_delay/2 + root_dispersion + 2**precision

theta is the measured offset of the server clock from ours and delta the round-trip
delay. Whatever the path asymmetry, the server's clock at our time T lies within
theta +- delta/2 of ours; the server's clock lies within its root distance
(root_delay/2 + root_dispersion) of UTC, and its timestamps are only read to
2**precision. So ``|UTC - now()| <= bound`` at the moment the sample is taken. Later,
the bound grows by ``drift_ppm`` times the sample's age (our oscillator wanders, RFC
5905's PHI is 15 ppm), plus any step of the system clock since the sample (wall time
moving differently from monotonic time: settimeofday, a leap second, a suspended VM).

A poll with at least ``min_good_servers`` good samples replaces the last good sample
with the one of smallest bound. A reply that says our clock is off (offset or bound
over the limits) stops issuance at once: fail closed on evidence. Silence and replies
from unsynchronised servers are no evidence about our clock, so the last good sample
stays in force until it is ``max_age_s`` old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import ntplib

from tsa_server.clock.base import (
    UNKNOWN_ERROR,
    ClockStatus,
    TimeSource,
    utc_from_timestamp,
)

log = logging.getLogger("tsa.clock")

DEFAULT_PORT = 123
_HEADER_LEN = 48  # an NTP packet without extension fields
_MAX_REPLY = 1024  # header + extension fields + MAC fit easily; more is not NTP
_FLOAT_SLACK = 1e-6  # NTP timestamps as floats are exact to ~0.5 us; tolerate that much


class NtpError(Exception):
    """One server gave no usable sample; the message is short and client-safe."""


@dataclass(frozen=True)
class NtpSettings:
    """How the monitor polls and what it accepts. Validated on construction."""

    servers: tuple[str, ...] = ("127.0.0.1:123",)  # "host", "host:port" or "[v6]:port"
    interval_s: float = 16.0  # wait between polls
    timeout_s: float = 1.0  # per server and poll
    max_offset_ms: float = 100.0  # |offset| above this stops issuance
    max_age_s: float = 64.0  # the last good sample expires after this
    max_error_ms: float = 1000.0  # largest error bound we issue under = accuracy we state
    drift_ppm: float = 15.0  # growth of the error bound with the sample's age
    min_good_servers: int = 1  # good samples one poll needs to count as in sync
    # Trust a server whose reference is its own local clock (development only).
    accept_local_reference: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", tuple(self.servers))
        if not self.servers:
            raise ValueError("at least one NTP server is needed")
        for server in self.servers:
            parse_server(server)
        for name in ("interval_s", "timeout_s", "max_offset_ms", "max_error_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if not self.drift_ppm >= 0:
            raise ValueError("drift_ppm must not be negative")
        if not 1 <= self.min_good_servers <= len(self.servers):
            raise ValueError("min_good_servers must be between 1 and the number of servers")
        # A sample must outlive the wait for the next one, or the clock flaps between polls.
        longest_wait = self.interval_s + self.timeout_s * len(self.servers)
        if not self.max_age_s > longest_wait:
            raise ValueError(
                f"max_age_s must exceed interval_s + timeout_s x servers ({longest_wait:g} s)"
            )


@dataclass(frozen=True)
class NtpSample:
    """One sane reply, measured against our time source. Times in seconds."""

    server: str
    offset: float  # server clock - our clock
    delay: float
    root_delay: float
    root_dispersion: float
    precision: float
    stratum: int
    error_bound: float  # bound on |UTC - our clock| when the sample was taken
    wall: float  # our time source when the reply arrived
    mono: float  # our monotonic source at the same moment
    local_reference: bool = False  # the server serves its own unsynchronised clock


def parse_server(text: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[v6]:port"`` or bare ``"v6"`` -> (host, port)."""
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad NTP server {text!r}")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad NTP server {text!r}")
    return host, int(port)


def query(
    server: str,
    *,
    timeout: float = 1.0,
    time_source: TimeSource = time.time,
    monotonic_source: TimeSource = time.monotonic,
) -> NtpSample:
    """Ask one server for the time (NTPv4 client mode); raise NtpError unless sane.

    We use ntplib's packet codec but not ``NTPClient.request``: it neither checks that
    the reply answers our request (the originate timestamp) nor lets the exchange be
    timed with our time source, and the offset must be measured against the clock
    ``now()`` reads.
    """
    host, port = parse_server(server)
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(address)  # the kernel then drops datagrams from anyone else
        t1 = time_source()
        request = bytearray(
            ntplib.NTPPacket(
                version=4, mode=3, tx_timestamp=ntplib.system_to_ntp_time(t1)
            ).to_data()
        )
        # Random bits below our clock's resolution make the reply unguessable off-path.
        request[46:48] = bytes([request[46] & 0xF0 | os.urandom(1)[0] & 0x0F, os.urandom(1)[0]])
        reply, t4, mono = _exchange(sock, bytes(request), timeout, time_source, monotonic_source)
    return _sample(label, reply, t1, t4, mono)


def _exchange(
    sock: socket.socket,
    request: bytes,
    timeout: float,
    time_source: TimeSource,
    monotonic_source: TimeSource,
) -> tuple[bytes, float, float]:
    """Send, and wait up to ``timeout`` for the reply that echoes our transmit timestamp."""
    deadline = time.monotonic() + timeout  # real time: socket timeouts are real
    sock.send(request)
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            reply = sock.recv(_MAX_REPLY)
        except TimeoutError:
            break
        except ConnectionRefusedError as exc:
            raise NtpError("connection refused (nothing listens)") from exc
        t4, mono = time_source(), monotonic_source()
        if len(reply) >= _HEADER_LEN and reply[24:32] == request[40:48]:
            return reply, t4, mono
    raise NtpError(f"no reply within {timeout:g} s")


def _sample(label: str, reply: bytes, t1: float, t4: float, mono: float) -> NtpSample:
    """Judge a reply's sanity (RFC 5905 packet tests) and measure it."""
    stats = ntplib.NTPStats()
    stats.from_data(reply)
    if stats.mode != 4 or stats.version not in (3, 4):
        raise NtpError(f"not an NTP server reply (version {stats.version}, mode {stats.mode})")
    if stats.leap == 3:
        raise NtpError("server unsynchronised (leap indicator 3)")
    if stats.stratum == 0:
        code = reply[12:16].decode("ascii", "replace").strip("\0")
        raise NtpError(f"kiss-o'-death {code!r}")
    if stats.stratum >= 16:
        raise NtpError(f"server unsynchronised (stratum {stats.stratum})")
    if reply[40:48] == bytes(8) or reply[32:40] == bytes(8):
        raise NtpError("zero receive or transmit timestamp")
    t2, t3 = stats.recv_time, stats.tx_time
    offset = ((t2 - t1) + (t3 - t4)) / 2
    delay = (t4 - t1) - (t3 - t2)
    if t3 < t2 - _FLOAT_SLACK or delay < -_FLOAT_SLACK:
        raise NtpError("inconsistent timestamps")
    delay = max(delay, 0.0)
    precision = 2.0**stats.precision
    bound = abs(offset) + delay / 2 + stats.root_delay / 2 + stats.root_dispersion + precision
    return NtpSample(
        server=label,
        offset=offset,
        delay=delay,
        root_delay=stats.root_delay,
        root_dispersion=stats.root_dispersion,
        precision=precision,
        stratum=stats.stratum,
        error_bound=bound,
        wall=t4,
        mono=mono,
        local_reference=_is_local_reference(stats.stratum, reply[12:16]),
    )


def _is_local_reference(stratum: int, refid: bytes) -> bool:
    """A server whose reference is its own undisciplined clock (chrony/ntpd `local`
    driver: refid 127.127.1.x, or "LOCL" at stratum 1) vouches for nothing."""
    return refid[:3] == b"\x7f\x7f\x01" or (stratum == 1 and refid == b"LOCL")


@dataclass(frozen=True)
class _Poll:
    good: tuple[NtpSample, ...]
    against: tuple[tuple[NtpSample, str], ...]  # sane replies that say our clock is off
    problems: tuple[str, ...]  # servers that gave no sane reply


@dataclass(frozen=True)
class _State:
    sample: NtpSample | None = None  # the last good sample
    against: tuple[str, float] | None = None  # (reason, bound): the last poll says we're off
    problems: str | None = None  # why the last poll gave no good sample


class NtpMonitor:
    """A ``Clock`` whose ``status()`` is usable only while NTP says our clock is right.

    ``on_change(status)`` is called once per usable/unusable transition, on the thread
    that noticed it: the event loop's when driven by ``run``/``start`` and request
    handlers. Keep it quick; it runs under the monitor's lock.
    """

    def __init__(
        self,
        settings: NtpSettings,
        *,
        time_source: TimeSource = time.time,
        monotonic_source: TimeSource = time.monotonic,
        on_change: Callable[[ClockStatus], None] | None = None,
    ) -> None:
        self._settings = settings
        self._time = time_source
        self._mono = monotonic_source
        self._on_change = on_change
        self._lock = threading.RLock()
        self._state = _State()
        self._reported_usable = False
        self._pool: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_failure: str | None = None

    @property
    def settings(self) -> NtpSettings:
        return self._settings

    @property
    def last_sample(self) -> NtpSample | None:
        return self._state.sample

    def now(self) -> datetime:
        return utc_from_timestamp(self._time())

    def status(self) -> ClockStatus:
        with self._lock:
            status = self._evaluate(self._state, self._time(), self._mono())
            if status.usable != self._reported_usable:
                self._reported_usable = status.usable
                self._announce(status)
        return status

    def poll_once(self) -> ClockStatus:
        """Query every server (blocking, up to timeout_s each) and update the state.

        Servers are asked one after the other: a poll lasts at most timeout_s x servers.
        """
        return self._apply(self._collect())

    def _collect(self) -> _Poll:
        limits = self._settings
        good: list[NtpSample] = []
        against: list[tuple[NtpSample, str]] = []
        problems: list[str] = []
        for server in limits.servers:
            try:
                sample = query(
                    server,
                    timeout=limits.timeout_s,
                    time_source=self._time,
                    monotonic_source=self._mono,
                )
            except (NtpError, OSError) as exc:
                problems.append(f"{server}: {exc}")
                log.debug("NTP %s: %s", server, exc)
                continue
            log.debug("NTP %s", sample)
            if sample.local_reference and not limits.accept_local_reference:
                problems.append(f"{server}: serves its local clock, not a time reference")
                continue
            if abs(sample.offset) * 1e3 > limits.max_offset_ms:
                limit = _fmt(limits.max_offset_ms / 1e3)
                against.append((sample, f"offset {_fmt(sample.offset, True)} exceeds {limit}"))
            elif sample.error_bound * 1e3 > limits.max_error_ms:
                limit = _fmt(limits.max_error_ms / 1e3)
                against.append((sample, f"error bound {_fmt(sample.error_bound)} exceeds {limit}"))
            else:
                good.append(sample)
        return _Poll(tuple(good), tuple(against), tuple(problems))

    def _apply(self, poll: _Poll) -> ClockStatus:
        need = self._settings.min_good_servers
        with self._lock:
            old = self._state
            if len(poll.good) >= need:
                best = min(poll.good, key=lambda s: s.error_bound)
                self._state = _State(sample=best)
            else:
                problems = list(poll.problems)
                if poll.good:
                    problems.insert(0, f"{len(poll.good)} good server(s), {need} needed")
                against = old.against
                if poll.against:
                    reason = "; ".join(
                        _with_server(sample.server, text, len(self._settings.servers))
                        for sample, text in poll.against
                    )
                    against = (reason, min(sample.error_bound for sample, _ in poll.against))
                self._state = _State(old.sample, against, "; ".join(problems) or None)
            return self.status()

    def _evaluate(self, state: _State, wall: float, mono: float) -> ClockStatus:
        limits = self._settings
        sample = state.sample
        if sample is None and state.against is None:
            detail = f" ({state.problems})" if state.problems else ""
            return ClockStatus(False, UNKNOWN_ERROR, f"no NTP sample yet{detail}", None)
        if state.against is not None:
            reason, bound = state.against
            return self._status(False, bound, reason, sample)
        assert sample is not None
        mono_age, wall_age = mono - sample.mono, wall - sample.wall
        age = max(mono_age, wall_age, 0.0)
        step = abs(wall_age - mono_age)
        bound = sample.error_bound + limits.drift_ppm * 1e-6 * age + step
        if age > limits.max_age_s:
            detail = f" ({state.problems})" if state.problems else ""
            reason = f"last good NTP sample is {_fmt_age(age)} s old (max {limits.max_age_s:g} s)"
            return self._status(False, bound, reason + detail, sample)
        if bound * 1e3 > limits.max_error_ms:
            reason = f"error bound {_fmt(bound)} exceeds {_fmt(limits.max_error_ms / 1e3)}"
            if step > 1e-3:
                reason += f" (system clock stepped {_fmt(step)} since the last sample)"
            return self._status(False, bound, reason, sample)
        reason = f"in sync with {sample.server} (offset {_fmt(sample.offset, True)})"
        return self._status(True, bound, reason, sample)

    @staticmethod
    def _status(usable: bool, bound: float, reason: str, sample: NtpSample | None) -> ClockStatus:
        return ClockStatus(
            usable=usable,
            error_bound=timedelta(seconds=bound),
            reason=reason,
            last_sync=utc_from_timestamp(sample.wall) if sample else None,
            offset=timedelta(seconds=sample.offset) if sample else None,
            source=sample.server if sample else None,
        )

    def _announce(self, status: ClockStatus) -> None:
        if status.usable:
            log.info("clock usable, issuance allowed: %s", status.reason)
        else:
            log.warning("clock unusable, issuance stopped: %s", status.reason)
        if self._on_change is not None:
            try:
                self._on_change(status)
            except Exception:
                log.exception("clock on_change callback failed")

    async def run(self, *, poll_first: bool = True) -> None:
        """Poll every ``interval_s`` until cancelled; a failing poll is logged, not fatal."""
        if not poll_first:
            await asyncio.sleep(self._settings.interval_s)
        while True:
            await self._poll_in_background()
            await asyncio.sleep(self._settings.interval_s)

    async def _poll_in_background(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ntp-monitor")
        try:
            # Only the network I/O leaves the loop: transitions (and on_change) happen here.
            poll = await loop.run_in_executor(self._pool, self._collect)
            self._apply(poll)
            self._last_failure = None
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            # Once per distinct failure: a broken poll every interval must not flood the log.
            log.log(
                logging.DEBUG if message == self._last_failure else logging.ERROR,
                "NTP poll failed: %s",
                message,
            )
            self._last_failure = message
            self.status()  # still notice the last sample expiring

    async def start(self) -> ClockStatus:
        """Take a first sample (readiness is known before serving), then poll in the
        background until ``stop``."""
        if self._task is not None:
            raise RuntimeError("NtpMonitor already started")
        await self._poll_in_background()
        status = self.status()
        if not status.usable:
            log.warning("clock unusable at start: %s", status.reason)
        self._task = asyncio.get_running_loop().create_task(
            self.run(poll_first=False), name="ntp-monitor"
        )
        return status

    async def stop(self) -> None:
        """Cancel the polling loop and wait for a poll in flight to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            # Let a poll in flight finish (at most timeout_s per server): no NTP traffic
            # leaves after stop() returns.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> NtpMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def cleanup_ctx(self, _app: object) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx.append(monitor.cleanup_ctx)`` (aiohttp)."""
        async with self:
            yield


def _with_server(server: str, text: str, servers: int) -> str:
    return text if servers == 1 else f"{server}: {text}"


def _fmt(seconds: float, signed: bool = False) -> str:
    """0.0004 -> "0.4 ms", 2.1 -> "2.1 s"; three significant digits."""
    sign = "+" if signed else ""
    if abs(seconds) >= 0.9995:
        return f"{seconds:{sign}.3g} s"
    return f"{seconds * 1e3:{sign}.3g} ms"


def _fmt_age(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 100 else f"{seconds:.3g}"
