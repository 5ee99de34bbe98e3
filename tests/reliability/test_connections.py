"""Hostile connections against the real server: slow-loris clients, hundreds of idle
connections, absurd headers, bodies without Content-Length and oversized chunked
bodies. Good requests keep getting tokens promptly, bad ones get a 4xx, and the
server keeps serving."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time

import pytest

from tests.support.queries import failure_of, make_request
from tests.support.tsa import QUERY_TYPE, TsaServer

GRANTED = ("granted", "granted_with_mods")
PROMPT_S = 3.0  # a good request is answered within this, however busy the attackers


def raw_exchange(server: TsaServer, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes on a fresh connection and read one HTTP response."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        return reply.status, reply.read()


def query_head(length: int | None = None, extra: str = "") -> bytes:
    head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {QUERY_TYPE}\r\n{extra}"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


def good_request_prompt(server: TsaServer) -> None:
    started = time.monotonic()
    status, _, body = server.post_query(make_request(b"good %d" % time.monotonic_ns()))
    elapsed = time.monotonic() - started
    assert status == 200 and failure_of(body)[0] in GRANTED, body
    assert elapsed < PROMPT_S, f"a good request took {elapsed:.2f}s"


@pytest.fixture
def server(make_server) -> TsaServer:
    return make_server(server={"max_connections": 300, "idle_timeout_s": 2.0}).start()


async def _open_many(
    port: int, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    opened = []
    for _ in range(count):
        opened.append(await asyncio.open_connection("127.0.0.1", port))
    return opened


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(4096):
                pass
        return True
    except (TimeoutError, ConnectionError):
        return False


def test_slow_loris_clients_do_not_stop_good_requests(server: TsaServer) -> None:
    header = query_head(100)

    async def attack() -> tuple[int, int]:
        connections = await _open_many(server.port, 150)

        async def drip(writer: asyncio.StreamWriter) -> None:
            for byte in header:  # one byte every 0.1 s: the headers never finish in time
                try:
                    writer.write(bytes((byte,)))
                    await writer.drain()
                except ConnectionError:
                    return
                await asyncio.sleep(0.1)

        drips = [asyncio.create_task(drip(w)) for _, w in connections]
        for _ in range(5):
            await asyncio.to_thread(good_request_prompt, server)
            await asyncio.sleep(0.2)
        closed = await asyncio.gather(*(_closed_by_server(r, 8.0) for r, _ in connections))
        for task in drips:
            task.cancel()
        for _, writer in connections:
            writer.close()
        return sum(closed), len(connections)

    closed, total = asyncio.run(attack())
    assert closed == total, f"only {closed} of {total} slow-loris connections were closed"
    good_request_prompt(server)
    print(f"\nslow-loris: {total} dripping connections, all closed by the idle timeout")


def test_idle_connections_beyond_the_cap_do_not_stop_good_requests(make_server) -> None:
    # A long idle timeout: only the cap closes connections here.
    server = make_server(server={"max_connections": 300, "idle_timeout_s": 60.0}).start()

    async def attack() -> tuple[int, int]:
        connections = await _open_many(server.port, 500)
        await asyncio.sleep(0.5)
        for _ in range(5):
            await asyncio.to_thread(good_request_prompt, server)
        closed = await asyncio.gather(*(_closed_by_server(r, 1.0) for r, _ in connections))
        for _, writer in connections:
            writer.close()
        return sum(closed), len(closed) - sum(closed)

    evicted, kept = asyncio.run(attack())
    assert evicted >= 200 and kept <= 300, (evicted, kept)
    good_request_prompt(server)
    assert "connection cap 300 reached" in server.log()
    print(f"\nidle: 500 idle connections, cap 300: {evicted} evicted, {kept} kept open")


def test_many_idle_connections_under_the_cap_are_harmless(make_server) -> None:
    server = make_server().start()  # the default cap, 1024

    async def hold() -> None:
        connections = await _open_many(server.port, 500)
        for _ in range(5):
            await asyncio.to_thread(good_request_prompt, server)
        for _, writer in connections:
            writer.close()

    asyncio.run(hold())
    good_request_prompt(server)


@pytest.mark.parametrize(
    ("extra", "allowed"),
    [
        ("X-Huge: " + "a" * 100_000 + "\r\n", (400, 431)),
        ("".join(f"X-H{i}: v\r\n" for i in range(5000)), (400, 431)),
        ("X-" + "n" * 20_000 + ": v\r\n", (400, 431)),
    ],
    ids=["huge-header-line", "5000-headers", "huge-header-name"],
)
def test_absurd_headers_are_refused(server: TsaServer, extra: str, allowed) -> None:
    status, _ = raw_exchange(server, query_head(10, extra) + b"x" * 10)
    assert status in allowed
    good_request_prompt(server)


def test_huge_request_line_is_refused(server: TsaServer) -> None:
    status, _ = raw_exchange(server, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status in (400, 414, 431)
    good_request_prompt(server)


def test_body_without_content_length_is_an_empty_request(server: TsaServer) -> None:
    # HTTP/1.1 without Content-Length or chunking has no body: an empty TimeStampReq.
    status, body = raw_exchange(server, query_head(None, "Connection: close\r\n") + make_request())
    if status == 200:
        assert failure_of(body) == ("rejection", frozenset({"bad_data_format"}))
    else:
        assert 400 <= status < 500
    good_request_prompt(server)


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_bounded(server: TsaServer) -> None:
    head = query_head(None, "Transfer-Encoding: chunked\r\n")
    status, body = raw_exchange(server, head + chunked(make_request(b"chunked"), 7))
    assert status == 200 and failure_of(body)[0] in GRANTED
    status, _ = raw_exchange(server, head + chunked(b"\x30" * 200_000))
    assert status == 413
    # a chunk size announcing more than the limit is refused before it arrives
    endless = head + b"fffffff\r\n" + b"\0" * 9000
    status, _ = raw_exchange(server, endless)
    assert status == 413
    good_request_prompt(server)


def test_absurd_content_length_is_refused_before_reading(server: TsaServer) -> None:
    status, _ = raw_exchange(server, query_head(10**15))
    assert status == 413
    status, _ = raw_exchange(server, query_head(None, "Content-Length: -5\r\n"))
    assert status == 400
    good_request_prompt(server)
