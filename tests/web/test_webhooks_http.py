"""REC-10 webhooks against a real `tsa serve` and a real receiving aiohttp server on
127.0.0.1: endpoints set per organisation over the API, notices of deposits and renewal
runs delivered signed (HMAC-SHA256), retried after failures with one success, resumed
after a restart, never across accounts; and the dispatcher's backoff and give-up under
an injected clock."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.tsa import TsaServer
from tests.web.test_evidence_http import FORM, Api, new_org, sha, tsa
from tsa_server.accounts.keys import Organisation
from tsa_server.evidence.records import StoredNotice
from tsa_server.evidence.store import EvidenceStore
from tsa_server.evidence.webhook_dispatch import WebhookDispatcher
from tsa_server.evidence.webhooks import WebhookSettings, new_secret
from tsa_server.wiring.databases import open_evidence_store

pytestmark = pytest.mark.both_backends


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def delivery(self) -> str:
        return self.headers.get("X-TSA-Delivery", "")

    def signed_by(self, secret: str, tolerance_s: float = 300) -> bool:
        """The receiver's check, written from the README (not the server's code)."""
        fields = dict(p.split("=", 1) for p in self.headers["X-TSA-Signature"].split(","))
        mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + self.body, hashlib.sha256)
        fresh = abs(time.time() - int(fields["t"])) <= tolerance_s
        return fresh and hmac.compare_digest(fields["v1"], mac.hexdigest())


class Receiver:
    """An aiohttp server in a thread of its own: records every request and answers the
    queued statuses first, then `default` (307 redirects to /elsewhere)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.queued: list[int] = []
        self.default = 200
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?receiver=1"

    async def _handle(self, request: web.Request) -> web.Response:
        status = self.queued.pop(0) if self.queued else self.default
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body, status))
        if status == 307:
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def start(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for(self, test: Callable[[list[Received]], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not test(list(self.received)):
            assert time.monotonic() < deadline, [(r.delivery, r.status) for r in self.received]
            time.sleep(0.05)

    def of(self, key: str) -> list[Received]:
        return [r for r in self.received if r.delivery == key]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def webhook_server(make_server, tmp_path: Path, **evidence) -> TsaServer:
    return make_server(
        evidence={
            "path": str(tmp_path / "evidence.sqlite"),
            "blobs": str(tmp_path / "blobs"),
            "webhook_poll_s": 0.1,
            "webhook_backoff_min_s": 0.3,
            "webhook_backoff_max_s": 1.0,
            "webhook_timeout_s": 2.0,
            # the receivers are plain-http servers on loopback: allowed here, not by default
            "webhook_allow_http": True,
            "webhook_allowed_networks": ["127.0.0.0/8"],
            **evidence,
        }
    )


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return webhook_server(make_server, tmp_path).start()


def set_webhook(api: Api, url: str, **fields) -> dict:
    status, _, body = api.call("PUT", "/api/v1/webhook", {"url": url, **fields})
    assert status == 201, body
    assert body["secret"].startswith("whsec_") and body["url"] == url
    return body


# ----------------------------------------------------------------------------- tests


def test_deposit_and_renewal_run_deliver_signed_webhooks(
    server: TsaServer, receiver: Receiver
) -> None:
    a = new_org(server, "Hooked", units=40)
    secret = set_webhook(a, receiver.url)["secret"]

    status, body = a.upload(FORM, [("design.ai", [b"a design worth keeping"])])
    assert status == 201, body
    item = body["items"][0]
    key = f"certified/{item['id']}"
    receiver.wait_for(lambda got: any(r.delivery == key for r in got))
    [got] = receiver.of(key)
    assert got.path == "/hook" and got.status == 200
    assert got.headers["X-TSA-Event"] == "item.certified"
    assert got.headers["Content-Type"] == "application/json"
    assert got.signed_by(secret) and not got.signed_by(secret + "x")
    payload = json.loads(got.body)
    assert payload["id"] == key and payload["event"] == "item.certified"
    assert payload["organisation"] == a.org and payload["notice"]["subject"] == item["id"]

    # a renewal run (the CLI, another process) at the storage expiry: its notices too
    report = json.loads(tsa(server, "evidence", "renew-run", "--at", item["storage"]["expires_at"]))
    assert report["renewed"] + report["expired"] == 1, report
    event = "renewal.done" if report["renewed"] else "renewal.failed"
    receiver.wait_for(lambda got: any(r.headers.get("X-TSA-Event") == event for r in got))
    renewal = next(r for r in receiver.received if r.headers["X-TSA-Event"] == event)
    assert renewal.signed_by(secret)
    assert json.loads(renewal.body)["notice"]["subject"] == item["id"]
    assert len({r.delivery for r in receiver.received}) == len(receiver.received)  # once each

    # The receiver sees a delivery before the dispatcher has recorded its answer.
    deadline = time.monotonic() + 15
    while True:
        status, _, view = a.get("/api/v1/webhook")
        assert status == 200 and "secret" not in view and view["url"] == receiver.url
        counts = view["deliveries"]
        if counts["delivered"] == len(receiver.received) and counts["pending"] == 0:
            break
        assert time.monotonic() < deadline, (counts, len(receiver.received))
        time.sleep(0.1)
    assert secret not in server.log() and "receiver=1" not in server.log()


def test_a_failed_delivery_is_retried_until_one_success(
    server: TsaServer, receiver: Receiver
) -> None:
    a = new_org(server, "Flaky", units=5)
    secret = set_webhook(a, receiver.url, events=["item.certified"])["secret"]
    receiver.queued = [500, 307]  # then 200; the redirect is not followed

    status, _, body = a.deposit(sha(b"retry me"))
    assert status == 201
    key = f"certified/{body['items'][0]['id']}"
    receiver.wait_for(lambda got: any(r.delivery == key and r.status == 200 for r in got))
    time.sleep(1.5)  # longer than the longest backoff: no attempt after the success
    attempts = receiver.of(key)
    assert [r.status for r in attempts] == [500, 307, 200]
    assert len({r.body for r in attempts}) == 1 and all(r.signed_by(secret) for r in attempts)
    assert all(r.path == "/hook" for r in receiver.received)  # /elsewhere never asked
    view = a.get("/api/v1/webhook")[2]["deliveries"]
    assert view["delivered"] == 1 and view["pending"] == 0 and view["given_up"] == 0
    assert view["last_attempt"]["last_status"] == 200


def test_a_restart_resumes_pending_deliveries(
    make_server, tmp_path: Path, receiver: Receiver
) -> None:
    server = webhook_server(make_server, tmp_path, webhook_backoff_min_s=0.5).start()
    a = new_org(server, "Patient", units=5)
    secret = set_webhook(a, receiver.url)["secret"]
    receiver.default = 503
    status, _, body = a.deposit(sha(b"deliver me later"))
    assert status == 201
    key = f"certified/{body['items'][0]['id']}"
    receiver.wait_for(lambda got: len([r for r in got if r.delivery == key]) >= 2)
    server.stop()

    store = open_evidence_store(server.config())
    try:
        attempts, delivered = (
            store.db.connection()
            .execute(
                "SELECT d.attempts, d.delivered_at FROM webhook_deliveries d"
                " JOIN notices n ON n.id = d.notice_id WHERE n.key = ?",
                (key,),
            )
            .fetchone()
        )
    finally:
        store.close()
    assert attempts == len(receiver.of(key)) >= 2 and delivered is None

    receiver.default = 200
    server.start()
    receiver.wait_for(lambda got: any(r.delivery == key and r.status == 200 for r in got))
    tries = receiver.of(key)
    assert [r.status for r in tries] == [503] * attempts + [200]
    assert all(r.signed_by(secret) for r in tries)
    view = a.get("/api/v1/webhook")[2]["deliveries"]
    assert view["delivered"] == 1 and view["pending"] == 0


def test_webhooks_are_per_account_and_bad_urls_are_refused(
    server: TsaServer, receiver: Receiver
) -> None:
    a = new_org(server, "Shop A", units=2)
    b = new_org(server, "Shop B", units=2)
    assert a.get("/api/v1/webhook")[0] == 404
    secret_a = set_webhook(a, receiver.url)["secret"]
    assert b.get("/api/v1/webhook")[0] == 404  # A's webhook is invisible to B
    assert b.call("DELETE", "/api/v1/webhook")[0] == 404
    other = receiver.url.replace("receiver=1", "receiver=b")
    secret_b = set_webhook(b, other, events=["balance.low"])["secret"]
    assert secret_a != secret_b
    assert a.get("/api/v1/webhook")[2]["url"] == receiver.url

    # B's deposit is not delivered (B only wants balance.low); A's goes to A's URL only
    assert b.deposit(sha(b"b's item"))[0] == 201
    status, _, body = a.deposit(sha(b"a's item"))
    key = f"certified/{body['items'][0]['id']}"
    receiver.wait_for(lambda got: any(r.delivery == key for r in got))
    time.sleep(0.5)
    assert [r.delivery for r in receiver.received] == [key]
    assert json.loads(receiver.received[0].body)["organisation"] == a.org

    # PUT again replaces (200, a new secret); the old one signs nothing any more
    status, _, again = a.call("PUT", "/api/v1/webhook", {"url": receiver.url})
    assert status == 200 and again["created"] is False and again["secret"] != secret_a

    bad = {
        "ftp://127.0.0.1/hook": "http",
        "http://user:pw@127.0.0.1/hook": "credentials",
        "https://token@example.org/": "credentials",
        "http:///no-host": "host",
        "not a url": "",
        "https://example.org/#frag": "fragment",
        "http://example.org:99999/": "",
        "https://example.org/" + "x" * 3000: "2048",
        "": "",
    }
    for url, reason in bad.items():
        status, _, body = a.call("PUT", "/api/v1/webhook", {"url": url})
        assert status == 422 and "url" in body["fields"], (url, body)
        assert reason in body["fields"]["url"], (url, body)
    for fields in ({"url": 5}, {"events": ["item.certified"]}):
        assert a.call("PUT", "/api/v1/webhook", fields)[0] == 422
    status, _, body = a.call("PUT", "/api/v1/webhook", {"url": receiver.url, "events": ["x"]})
    assert status == 422 and "events" in body["fields"]
    status, _, body = a.call("PUT", "/api/v1/webhook", {"url": receiver.url, "extra": 1})
    assert status == 422 and "extra" in body["fields"]
    assert a.get("/api/v1/webhook")[2]["url"] == receiver.url  # refusals changed nothing

    # admin scope only
    member_key = tsa(
        server,
        "accounts",
        "create-key",
        "--org",
        a.org,
        "--role",
        "member",
        "--scope",
        "read,deposit",
    )
    member = Api(server, member_key, a.org)
    assert member.get("/api/v1/webhook")[0] == 403
    assert member.call("PUT", "/api/v1/webhook", {"url": receiver.url})[0] == 403

    assert a.call("DELETE", "/api/v1/webhook")[0] == 200
    assert a.get("/api/v1/webhook")[0] == 404
    assert b.get("/api/v1/webhook")[2]["url"] == other


def test_backoff_and_give_up_under_an_injected_clock(tmp_path: Path, receiver: Receiver) -> None:
    """The dispatcher in-process: a real store, the real receiver, a clock the test moves."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [t0]
    store = EvidenceStore(tmp_path / "e.sqlite", now=lambda: clock[0])
    store.insert_organisation(Organisation("org_a", "A", t0))
    store.put_webhook("org_a", receiver.url, None, new_secret(), t0)
    store.commit_change(
        "org_a", notices=[StoredNotice("org_a", "low-balance/x/1/1", "balance.low", t0, "x")]
    )
    receiver.default = 500
    settings = WebhookSettings(
        backoff_min_s=10,
        backoff_max_s=3600,
        give_up_s=86400,
        allow_http=True,
        allowed_networks=("127.0.0.0/8",),
    )

    async def attempts_at(offsets: list[float]) -> list[tuple[int, int, int]]:
        out = []
        dispatcher = WebhookDispatcher(store, settings, now=lambda: clock[0])
        try:
            for seconds in offsets:
                clock[0] = t0 + timedelta(seconds=seconds)
                r = await dispatcher.run_once()
                out.append((r["delivered"], r["failed"], r["given_up"]))
        finally:
            await dispatcher.stop()
        return out

    # first try at 0; then due at +10, +30 (10+20), +70 (30+40): not a moment earlier
    got = asyncio.run(attempts_at([0, 9.9, 10, 29.9, 30, 69.9, 70]))
    assert got == [(0, 1, 0), (0, 0, 0), (0, 1, 0), (0, 0, 0), (0, 1, 0), (0, 0, 0), (0, 1, 0)]
    assert len(receiver.received) == 4

    # waits cap at one hour; an attempt whose next wait would pass 24 h gives up
    def wait(failures: int) -> float:
        return min(10 * 2 ** (failures - 1), 3600)

    offsets, at, n = [], 70.0, 4
    while True:
        at += wait(n)
        n += 1
        offsets.append(at)
        if at + wait(n) > 86400:
            break
    got = asyncio.run(attempts_at(offsets))
    assert got[-1] == (0, 0, 1) and all(r == (0, 1, 0) for r in got[:-1])
    assert asyncio.run(attempts_at([200000])) == [(0, 0, 0)]  # given up: never again
    row = store.webhook("org_a")
    assert row is not None and row["given_up"] == 1 and row["pending"] == 0
    store.close()
