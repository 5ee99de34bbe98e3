"""Slow request bodies against the real server: every endpoint's body has a deadline
and a minimum rate (web/serving.py BodyWatchdog), the connection cap sheds slow
senders, and /tsr keeps answering while hundreds of connections trickle bodies."""

from __future__ import annotations

import asyncio
import statistics
import time

from tests.support.latency import baseline, tsr_latency
from tests.support.tsa import QUERY_TYPE

# Short limits so the tests take seconds: 1 s grace, then 2,000 bytes/s, 6 s at most.
BODY = {"body_grace_s": 1.0, "body_min_rate_bytes_s": 2000, "body_timeout_s": 6.0}


def _head(path: str, content_type: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


VERIFY_HEAD = _head("/verify", "multipart/form-data; boundary=xyz", 1 << 30)
TARGETS = [
    VERIFY_HEAD,
    _head("/api/v1/keys", "application/json", 16000),
    _head("/tsr", QUERY_TYPE, 4000),
    _head("/api/v1/deposits/upload", "multipart/form-data; boundary=xyz", 1 << 30),
]


async def _drip(port: int, head: bytes, every_s: float, stop: asyncio.Event) -> tuple[float, bytes]:
    """Open a connection, send the head, then one body byte every `every_s` until the
    server answers or closes; (seconds the server took, what it answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head)

    async def trickle() -> None:
        try:
            while not stop.is_set():
                writer.write(b"-")
                await writer.drain()
                await asyncio.sleep(every_s)
        except (ConnectionError, RuntimeError):
            return

    task = asyncio.create_task(trickle())
    try:
        answer = await reader.read(4096)
        while await reader.read(4096):
            pass
    except ConnectionError:
        answer = b""
    finally:
        task.cancel()
        writer.close()
    return time.monotonic() - started, answer


def test_a_trickling_body_is_answered_408_and_closed(make_server) -> None:
    server = make_server(server=BODY).start()

    async def run() -> list[tuple[float, bytes]]:
        stop = asyncio.Event()
        return await asyncio.gather(*(_drip(server.port, h, 0.3, stop) for h in TARGETS))

    verify, keys, tsr, upload = asyncio.run(run())
    for elapsed, answer in (verify, tsr):
        # grace 1 s, then the rate is owed: failed at the next sweep (1 s), well before 6 s
        assert elapsed < 5.0, (elapsed, answer[:200])
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"send it faster" in answer
    for elapsed, answer in (keys, upload):
        # Refused before the body is read (no API key): the rest is dropped for 2 s at most.
        assert elapsed < 5.0, (elapsed, answer[:200])
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert "Traceback" not in server.log()


def test_a_body_fast_enough_but_too_long_meets_the_deadline(make_server) -> None:
    server = make_server(server={**BODY, "body_min_rate_bytes_s": 1}).start()

    async def run() -> tuple[float, bytes]:
        return await _drip(server.port, VERIFY_HEAD, 0.05, asyncio.Event())

    elapsed, answer = asyncio.run(run())
    assert 5.5 < elapsed < 10.0, elapsed
    assert answer.startswith(b"HTTP/1.1 408") and b"within 6 s" in answer, answer[:200]


def test_tsr_keeps_answering_while_slow_bodies_fill_the_connection_cap(make_server) -> None:
    server = make_server(
        server={**BODY, "body_grace_s": 10.0, "body_timeout_s": 20.0, "max_connections": 200}
    ).start()
    base = baseline(server)

    async def attack() -> tuple[list[float], list[tuple[float, bytes]]]:
        stop = asyncio.Event()
        drips = [
            asyncio.create_task(_drip(server.port, TARGETS[i % 2], 1.0, stop))
            for i in range(260)  # past the cap of 200, all in the middle of a body
        ]
        await asyncio.sleep(2.0)
        latencies = [await asyncio.to_thread(tsr_latency, server) for _ in range(10)]
        stop.set()
        return latencies, await asyncio.gather(*drips)

    latencies, drips = asyncio.run(attack())
    # Within the grace period no body is too slow yet: the cap shed the slowest senders
    # to let /tsr clients in.
    shed = sum(1 for elapsed, _ in drips if elapsed < 9.0)
    assert shed >= 60, f"only {shed} slow senders were shed"
    assert statistics.median(latencies) < max(20 * base, 0.5), (base, latencies)
    assert "connection cap 200 reached" in server.log()
    assert tsr_latency(server) < 5.0
