"""One NTP exchange (NTPv4 client mode): ask a server, check its reply is sane (RFC 5905
packet tests) and measure our clock against it. The monitor that judges the samples is
`ntp.py`; the error bound of a sample is explained there.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import ntplib

from tsa_server.clock.base import TimeSource

DEFAULT_PORT = 123
_HEADER_LEN = 48  # an NTP packet without extension fields
_MAX_REPLY = 1024  # header + extension fields + MAC fit easily; more is not NTP
_FLOAT_SLACK = 1e-6  # NTP timestamps as floats are exact to ~0.5 us; tolerate that much


class NtpError(Exception):
    """One server gave no usable sample; the message is short and client-safe."""


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
    #: Leap indicator (LI) of the reply: 0 none, 1 the last minute of the UTC day has 61
    #: seconds, 2 it has 59 (3, unsynchronised, never makes a sample).
    leap: int = 0


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
        leap=stats.leap,
    )


def _is_local_reference(stratum: int, refid: bytes) -> bool:
    """A server whose reference is its own undisciplined clock (chrony/ntpd `local`
    driver: refid 127.127.1.x, or "LOCL" at stratum 1) vouches for nothing."""
    return refid[:3] == b"\x7f\x7f\x01" or (stratum == 1 and refid == b"LOCL")
