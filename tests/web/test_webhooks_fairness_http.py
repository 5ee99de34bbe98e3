"""One dead receiver never delays another organisation's notices (issue 13, item 9),
against a real `tsa serve`: organisation A's URL accepts connections and never answers,
B's answers at once; B's notice arrives while A's deliveries hang, and A never holds
more than `webhook_per_org_concurrency` connections."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.test_evidence_http import new_org, sha
from tests.web.test_webhooks_http import Receiver, set_webhook, webhook_server


class DeadReceiver:
    """Accepts connections, reads what comes and never answers; counts open ones."""

    def __init__(self) -> None:
        self.open = self.most = self.total = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.total += 1
        self.most = max(self.most, self.open)
        try:
            while await reader.read(4096):
                pass
        finally:
            self.open -= 1
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._hold, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> DeadReceiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def shut() -> None:
            held = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(10)


@pytest.fixture
def receivers() -> Iterator[tuple[DeadReceiver, Receiver]]:
    dead, fast = DeadReceiver().start(), Receiver().start()
    yield dead, fast
    dead.stop()
    fast.stop()


def test_a_dead_receiver_delays_only_its_own_organisation(
    make_server, tmp_path: Path, receivers: tuple[DeadReceiver, Receiver]
) -> None:
    dead, fast = receivers
    timeout = 4.0
    server = webhook_server(
        make_server,
        tmp_path,
        webhook_timeout_s=timeout,
        webhook_concurrency=4,
        webhook_per_org_concurrency=2,
        webhook_backoff_min_s=0.2,
    ).start()
    a = new_org(server, "Dead end", units=10)
    b = new_org(server, "Quick", units=5)
    set_webhook(a, f"http://127.0.0.1:{dead.port}/hook")
    set_webhook(b, fast.url)

    # B's delivery time unloaded, measured first (the machine is noisy)
    status, _, body = b.deposit(sha(b"baseline"))
    assert status == 201
    start = time.monotonic()
    fast.wait_for(lambda got: len(got) == 1, timeout=timeout * 3)
    baseline = time.monotonic() - start

    for n in range(5):  # more than every slot: A's notices all hang
        assert a.deposit(sha(b"to nowhere %d" % n))[0] == 201
    deadline = time.monotonic() + timeout
    while dead.total < 2:
        assert time.monotonic() < deadline, "A's deliveries never started"
        time.sleep(0.02)

    status, _, body = b.deposit(sha(b"must not wait"))
    assert status == 201
    key = f"certified/{body['items'][0]['id']}"
    start = time.monotonic()
    fast.wait_for(lambda got: any(r.delivery == key for r in got), timeout=timeout * 3)
    waited = time.monotonic() - start
    assert dead.open >= 1, "A's deliveries were no longer hanging: the test proves nothing"
    assert waited < baseline + timeout / 2, (waited, baseline)  # not after A's timeouts

    # A holds at most its own share, and its failures are named as timeouts
    time.sleep(timeout + 0.5)
    assert dead.most <= 2, dead.most
    last = a.get("/api/v1/webhook")[2]["deliveries"]["last_attempt"]
    assert last["last_error"] == "timeout" and last["last_status"] is None
    assert "Traceback" not in server.log()
