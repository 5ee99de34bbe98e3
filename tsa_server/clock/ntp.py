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

Which samples count, and what stops issuance (agreement among sources, steps, drift,
leap seconds), are the rules of ``judge.py``; the agreement is ``selection.py``. In
short: falsetickers outvoted by a majority are dropped; no majority, a majority (or a
lone source) saying our clock is off, a step of 1 s or more, drift past the stated
accuracy, or a leap second at hand stop issuance. Silence and replies from
unsynchronised servers are no evidence about our clock, so the last good sample stays
in force until it is ``max_age_s`` old. Every change is reported once to ``on_change``
(the server records it in the operations log) with the kind of event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from tsa_server.clock import judge
from tsa_server.clock.base import ClockStatus, TimeSource, utc_from_timestamp
from tsa_server.clock.ntp_query import DEFAULT_PORT, NtpError, NtpSample, parse_server, query
from tsa_server.clock.settings import NtpSettings

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


class NtpMonitor:
    """A ``Clock`` whose ``status()`` is usable only while NTP says our clock is right.

    ``on_change(status)`` is called once per change of what the clock is about: usable
    or not, the kind of event (``status.event``: "step", "no majority"...), and while
    usable the set of falsetickers; the status it receives says "synced", "regained",
    "falseticker" or "agreement restored" where the rules alone say "in sync". Nothing
    is reported before the first sync (start-up logs why it is not in sync). It runs on
    the thread that noticed the change: the event loop's when driven by ``run``/
    ``start`` and request handlers. Keep it quick; it runs under the monitor's lock.
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
        self._state = judge.State()
        # (usable, event, falsetickers) last reported; None before the first sync.
        self._reported: tuple[bool, str, tuple[str, ...]] | None = None
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
            wall, mono = self._time(), self._mono()
            self._state = judge.latch_step(self._state, wall, mono)
            status = judge.evaluate(self._settings, self._state, wall, mono)
            self._report(status)
        return status

    def poll_once(self) -> ClockStatus:
        """Query every server (blocking, up to timeout_s each) and update the state.

        Servers are asked one after the other: a poll lasts at most timeout_s x servers.
        """
        return self._apply(self._collect())

    def _collect(self) -> judge.Poll:
        limits = self._settings
        samples: list[NtpSample] = []
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
            samples.append(sample)
        return judge.Poll(tuple(samples), tuple(problems))

    def _apply(self, poll: judge.Poll) -> ClockStatus:
        with self._lock:
            self._state = judge.judge(self._settings, self._state, poll)
            return self.status()

    def _report(self, status: ClockStatus) -> None:
        """Announce a change of what the clock is about (see the class doc)."""
        dropped = status.falsetickers if status.usable else ()
        key = (status.usable, status.event, dropped)
        before, self._reported = self._reported, key
        if before is None and not status.usable:
            self._reported = None  # not in sync yet: nothing was lost
            return
        if key == before:
            return
        if not status.usable:
            log.warning("clock unusable, issuance stopped: %s", status.reason)
            self._notify(status)
        elif before is None or not before[0]:
            log.info("clock usable, issuance allowed: %s", status.reason)
            event = judge.SYNCED if before is None else judge.REGAINED
            self._notify(replace(status, event=event))
        elif dropped:
            log.warning("NTP falseticker(s) dropped, issuance continues: %s", status.reason)
            self._notify(replace(status, event=judge.FALSETICKER))
        else:
            log.info("NTP sources agree again: %s", status.reason)
            self._notify(replace(status, event=judge.AGREEMENT))

    def _notify(self, status: ClockStatus) -> None:
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
