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
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from tsa_server.clock.base import (
    UNKNOWN_ERROR,
    ClockStatus,
    TimeSource,
    utc_from_timestamp,
)
from tsa_server.clock.ntp_query import DEFAULT_PORT, NtpError, NtpSample, parse_server, query

# Re-exported: the tests (and anyone querying a server by hand) find them here; the
# monitor calls `query` through this module, so a test may replace it.
__all__ = [
    "DEFAULT_PORT",
    "NtpError",
    "NtpMonitor",
    "NtpSample",
    "NtpSettings",
    "parse_server",
    "query",
]

log = logging.getLogger("tsa.clock")


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
