"""Webhooks are not a scanner (issue 13, item 8), against a real `tsa serve` and real
receivers: URLs inside the network are refused when set (422), deliveries are fenced
again at connect time (a policy or DNS answer that changed since), failures show as
categories, TLS still verifies the URL's host name through the fence, and a signature
binds its time so a captured delivery cannot be replayed."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.tsa import free_port
from tests.web.test_evidence_http import new_org, sha, tsa
from tests.web.test_webhooks_http import Receiver, webhook_server
from tsa_server.accounts.keys import Organisation
from tsa_server.evidence.records import StoredNotice
from tsa_server.evidence.store import EvidenceStore
from tsa_server.evidence.webhook_dispatch import WebhookDispatcher
from tsa_server.evidence.webhooks import WebhookSettings, new_secret, sign, verify_signature

INSIDE = [
    "https://127.0.0.1/hook",
    "https://127.0.0.1:6379/",
    "https://[::1]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",  # carrier-grade NAT
    "https://0.0.0.0/",
    "https://[::]/",
    "https://224.0.0.1/",
    "https://255.255.255.255/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "https://[fe80::1]/",
    "https://[fc00::1]/",
    "https://[ff02::1]/",
    "https://2130706433/",  # 127.0.0.1, decimal
    "https://0x7f.1/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://localhost/",
    "https://LocalHost:8443/",
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def test_urls_inside_the_network_are_refused(make_server, tmp_path: Path) -> None:
    server = make_server(
        evidence={"path": str(tmp_path / "evidence.sqlite"), "blobs": str(tmp_path / "blobs")}
    ).start()  # the defaults: https only, public addresses only
    a = new_org(server, "Prober")
    for url in INSIDE:
        status, _, body = a.call("PUT", "/api/v1/webhook", {"url": url})
        assert status == 422, (url, body)
        assert (
            "public addresses only" in body["fields"]["url"] or "decimal" in body["fields"]["url"]
        ), (url, body)
    status, _, body = a.call("PUT", "/api/v1/webhook", {"url": "http://8.8.8.8/hook"})
    assert status == 422 and "https" in body["fields"]["url"], body
    status, _, body = a.call("PUT", "/api/v1/webhook", {"url": "https://no-such-host.invalid/"})
    assert status == 422 and "does not resolve" in body["fields"]["url"], body
    assert a.get("/api/v1/webhook")[0] == 404  # nothing was set
    status, _, body = a.call("PUT", "/api/v1/webhook", {"url": "https://8.8.8.8/hook"})
    assert status == 201, body  # a public address is fine
    assert "Traceback" not in server.log()


def test_deliveries_are_fenced_again_at_connect_time(
    make_server, tmp_path: Path, receiver: Receiver
) -> None:
    """URLs set while the operator allowed loopback; then the operator stops allowing it
    (what DNS rebinding does to a name): nothing reaches the receiver any more, and the
    customer sees a category, not the connector's error."""
    loopback = ["127.0.0.0/8", "::1/128"]
    first = webhook_server(make_server, tmp_path, webhook_allowed_networks=loopback).start()
    named = new_org(first, "By name", units=5)
    literal = new_org(first, "By address", units=5)
    closed = new_org(first, "Closed port", units=5)
    tls = new_org(first, "TLS to plain http", units=5)
    port = receiver.port
    for api, url in (
        (named, f"http://localhost:{port}/hook"),
        (literal, f"http://127.0.0.1:{port}/hook"),
        (closed, f"http://127.0.0.1:{free_port()}/hook"),
        (tls, f"https://127.0.0.1:{port}/hook"),
    ):
        status, _, body = api.call("PUT", "/api/v1/webhook", {"url": url})
        assert status == 201, body
    first.stop()

    second = webhook_server(make_server, tmp_path, webhook_allowed_networks=[]).start()
    for api in (named, literal, closed, tls):
        api.server = second
        assert api.deposit(sha(api.org.encode()))[0] == 201

    def last_error(api) -> str | None:
        last = api.get("/api/v1/webhook")[2]["deliveries"]["last_attempt"]
        return None if last is None else last["last_error"]

    everyone = (named, literal, closed, tls)
    _wait(lambda: all(last_error(api) == "blocked address" for api in everyone))
    assert receiver.received == []
    for api in (named, literal):
        last = api.get("/api/v1/webhook")[2]["deliveries"]["last_attempt"]
        assert last["last_status"] is None
    second.stop()

    # allowed again: each failure is named by its category, never the connector's words
    third = webhook_server(make_server, tmp_path, webhook_allowed_networks=loopback).start()
    for api in (named, literal, closed, tls):
        api.server = third
    _wait(lambda: (last_error(closed), last_error(tls)) == ("connection refused", "TLS error"))
    _wait(lambda: len({r.delivery for r in receiver.received}) == 2)
    log = third.log()
    assert "Traceback" not in log and "ClientConnector" not in log
    assert "Traceback" not in first.log() + second.log()
    tsa(third, "accounts", "list")  # the CLI still reads the database


def _wait(test, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ----------------------------------------------------------------------- TLS, in-process


def _tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA the dispatcher trusts, and a server context for a certificate that names
    localhost only (no IP address)."""
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer_name, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = cert("webhook test CA", ca_key, ca_name, ca_key, True)
    leaf = cert("localhost", leaf_key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return client, server


def test_tls_checks_the_url_host_through_the_fence(tmp_path: Path) -> None:
    """In-process: a real HTTPS receiver whose certificate names localhost only."""
    client_ctx, server_ctx = _tls_pair(tmp_path)
    got: list[str] = []
    ready, stop = threading.Event(), threading.Event()
    port = free_port()

    def serve() -> None:
        async def handle(request: web.Request) -> web.Response:
            got.append(request.headers["X-TSA-Delivery"])
            return web.Response(text="ok")

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/hook", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await runner.cleanup()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    t0 = dt.datetime.now(dt.UTC)
    store = EvidenceStore(tmp_path / "e.sqlite")
    settings = WebhookSettings(allowed_networks=("127.0.0.0/8",), backoff_min_s=3600)

    async def deliver(url: str, key: str) -> dict[str, int]:
        org = f"org_{key}"
        store.insert_organisation(Organisation(org, key, t0))
        store.put_webhook(org, url, None, new_secret(), t0)
        notice = StoredNotice(org, f"low-balance/{key}", "balance.low", t0, key)
        store.commit_change(org, notices=[notice])
        dispatcher = WebhookDispatcher(store, settings, ssl_context=client_ctx)
        try:
            return await dispatcher.run_once()
        finally:
            await dispatcher.stop()

    try:
        # by name: SNI and the certificate check use "localhost", the fence judged 127.0.0.1
        assert asyncio.run(deliver(f"https://localhost:{port}/hook", "named"))["delivered"] == 1
        assert got == ["low-balance/named"]
        # by address: the certificate does not name 127.0.0.1, so no delivery
        assert asyncio.run(deliver(f"https://127.0.0.1:{port}/hook", "bare"))["failed"] == 1
        last = store.webhook("org_bare")["last_attempt"]
        assert last["last_error"] == "TLS error" and got == ["low-balance/named"]
        # a name that stopped resolving: a DNS failure, not the resolver's message
        assert asyncio.run(deliver("https://no-such-host.invalid/hook", "gone"))["failed"] == 1
        assert store.webhook("org_gone")["last_attempt"]["last_error"] == "DNS failure"
    finally:
        stop.set()
        thread.join(10)
        store.close()


def test_a_signature_binds_its_time() -> None:
    secret, body, at = new_secret(), b'{"id":"x"}', 1_800_000_000
    header = sign(secret, body, at)
    assert header.startswith(f"t={at},v1=")
    assert verify_signature(secret, body, header, now=at + 299)
    assert not verify_signature(secret, body, header, now=at + 301)  # replayed later
    assert not verify_signature(secret, body, header, now=at - 301)
    assert not verify_signature(secret, body + b" ", header, now=at)
    assert not verify_signature(secret + "x", body, header, now=at)
    forged_time = header.replace(f"t={at}", f"t={at + 600}")  # a fresh t on an old MAC
    assert not verify_signature(secret, body, forged_time, now=at + 600)
    assert not verify_signature(secret, body, "sha256=" + header.split("v1=")[1], now=at)
