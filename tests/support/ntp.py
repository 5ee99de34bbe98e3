"""A real NTP server for tests: UDP on 127.0.0.1, server mode, every field controllable.

``NtpResponder`` answers NTPv1-4 client requests (mode 3) with server replies (mode 4)
as RFC 5905 describes: same version as the request, the request's transmit timestamp
echoed as originate, receive and transmit timestamps read from ``time_source`` plus
``offset``. Attributes may be changed while it runs (``responder.offset = 2.0``,
``responder.silent = True``); the next request sees them.

``FakeTime`` is a wall and monotonic clock that moves only when told. Shared by a
responder and an ``NtpMonitor``, it makes offsets exact and delays zero.
"""

from __future__ import annotations

import math
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (POSIX)
_HEADER = struct.Struct("!BBbbII4s8s8s8s8s")


def ntp_timestamp(posix: float) -> bytes:
    """POSIX seconds -> 64-bit NTP timestamp (32.32 fixed point since 1900)."""
    seconds = math.floor(posix)
    fraction = int((posix - seconds) * 2**32)
    return struct.pack("!II", (seconds + NTP_EPOCH_OFFSET) & 0xFFFFFFFF, fraction)


def ntp_short(seconds: float) -> int:
    """Seconds -> NTP short format (16.16 fixed point), saturating."""
    return min(max(round(seconds * 2**16), 0), 0xFFFFFFFF)


class FakeTime:
    """Wall and monotonic seconds that move only when the test says so."""

    def __init__(self, wall: float = 1_700_000_000.0, mono: float = 1_000.0) -> None:
        self.wall = wall
        self.mono = mono

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        """Time passes."""
        self.wall += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        """The system clock is stepped (settimeofday): wall time jumps, monotonic does not."""
        self.wall += seconds


class NtpResponder:
    """An NTP server on 127.0.0.1:<ephemeral port>, answering from a background thread."""

    def __init__(
        self,
        *,
        time_source: Callable[[], float] = time.time,
        offset: float = 0.0,
        stratum: int = 2,
        leap: int = 0,
        root_delay: float = 0.0,
        root_dispersion: float = 0.0,
        precision: int = -20,
        ref_id: bytes = b"\x7f\x00\x00\x01",
        silent: bool = False,
        bogus_origin: bool = False,
        zero_transmit: bool = False,
    ) -> None:
        self.time_source = time_source
        self.offset = offset  # seconds added to time_source: how wrong this server is
        self.stratum = stratum
        self.leap = leap
        self.root_delay = root_delay
        self.root_dispersion = root_dispersion
        self.precision = precision  # log2 seconds
        self.ref_id = ref_id  # 4 bytes: an IPv4 address, or a kiss code at stratum 0
        self.silent = silent  # drop requests
        self.bogus_origin = bogus_origin  # answer with an originate the client never sent
        self.zero_transmit = zero_transmit
        self.requests = 0  # requests received, answered or not
        self._sock: socket.socket | None = None
        self._port: int | None = None  # kept after stop, for assertions on the address
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("responder not started")
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:<port>"``, as NtpSettings.servers takes it."""
        return f"127.0.0.1:{self.port}"

    def now(self) -> float:
        return self.time_source() + self.offset

    def reply(self, request: bytes) -> bytes | None:
        """The server's answer to one datagram, or None to drop it."""
        if len(request) < 48:
            return None
        version, mode = request[0] >> 3 & 7, request[0] & 7
        if mode != 3 or not 1 <= version <= 4:
            return None
        received = self.now()
        origin = os.urandom(8) if self.bogus_origin else request[40:48]
        transmit = bytes(8) if self.zero_transmit else ntp_timestamp(self.now())
        return _HEADER.pack(
            self.leap << 6 | version << 3 | 4,
            self.stratum,
            request[2],  # poll: echo the client's
            self.precision,
            ntp_short(self.root_delay),
            ntp_short(self.root_dispersion),
            self.ref_id,
            ntp_timestamp(received - 1.0),  # reference time: "last set a second ago"
            origin,
            ntp_timestamp(received),
            transmit,
        )

    def start(self) -> NtpResponder:
        if self._sock is not None:
            raise RuntimeError("responder already started")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._port = self._sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="ntp-responder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> NtpResponder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            # A short select rather than a blocking recv: stop() must not wait on traffic.
            readable, _, _ = select.select([sock], [], [], 0.05)
            if not readable:
                continue
            try:
                request, client = sock.recvfrom(1024)
            except OSError:
                continue
            self.requests += 1
            if self.silent:
                continue
            answer = self.reply(request)
            if answer is not None:
                sock.sendto(answer, client)


@contextmanager
def ntp_responder(**settings: Any) -> Iterator[NtpResponder]:
    """A started NtpResponder (keyword arguments as NtpResponder's), stopped on exit."""
    with NtpResponder(**settings) as responder:
        yield responder
