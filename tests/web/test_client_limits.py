"""Per-client limits of the endpoints anyone may call ([limits], web/ratelimit.py
ClientLimiter): which requests they count, how clients are told apart, and a real
server answering 429 with Retry-After to a client over its bucket, and only to it."""

from __future__ import annotations

import time

import pytest

from tests.support.queries import failure_of, make_request
from tsa_server.fees.quotas import RateLimit
from tsa_server.web.ratelimit import ClientLimiter, request_kind


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/tsr", "tsr"),
        ("POST", "/", "tsr"),
        ("POST", "/verify", "verify"),
        ("GET", "/tokens/01ab", "lookup"),
        ("GET", "/ledger/tokens/lookup/time", "lookup"),
        ("GET", "/ledger/ops/proof/inclusion", "lookup"),
        ("GET", "/ledger/tokens/tlog-proof/5", "lookup"),
        ("GET", "/ledger/tokens/tile/0/000", "ledger"),
        ("GET", "/ledger/tokens/checkpoint", "ledger"),
        ("POST", "/ledger/tokens/publish", None),
        ("GET", "/api/v1/names/check", "lookup"),
        ("GET", "/api/v1/items", None),
        ("GET", "/healthz", None),
    ],
)
def test_requests_are_counted_by_kind(method: str, path: str, kind: str | None) -> None:
    assert request_kind(method, path) == kind


def test_clients_are_told_apart_by_address_and_ipv6_by_64() -> None:
    limiter = ClientLimiter({}, trusted_proxies=("10.0.0.0/8",))
    assert limiter.client("192.0.2.7", None) == "192.0.2.7"
    assert limiter.client("::ffff:192.0.2.7", None) == "192.0.2.7"
    assert limiter.client("2001:db8:1:2:aaaa::1", None) == "2001:db8:1:2::/64"
    assert limiter.client("2001:db8:1:2:bbbb::9", None) == "2001:db8:1:2::/64"
    # X-Forwarded-For counts only from a trusted proxy, and only its last hop
    assert limiter.client("192.0.2.7", "198.51.100.1") == "192.0.2.7"
    assert limiter.client("10.1.2.3", "203.0.113.9, 198.51.100.1") == "198.51.100.1"
    assert limiter.client("10.1.2.3", "not an address") == "10.1.2.3"


def test_a_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = ClientLimiter({"verify": RateLimit(2.0, 3)}, clock=lambda: now[0])
    assert [limiter.take("verify", "a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("verify", "a") == pytest.approx(0.5)
    assert limiter.take("verify", "b") == 0.0  # another client has its own bucket
    assert limiter.take("lookup", "a") == 0.0  # a kind without a limit is never refused
    now[0] += 0.5
    assert limiter.take("verify", "a") == 0.0


def test_a_client_over_its_limit_gets_429_and_issuance_goes_on(make_server) -> None:
    server = make_server(
        limits={
            "verify_per_second": 0.2,
            "verify_burst": 3,
            "lookup_per_second": 0.2,
            "lookup_burst": 2,
            "tsr_per_second": 0.2,
            "tsr_burst": 5,
        }
    ).start()
    verify = [server.request("POST", "verify", b"{}", {"Content-Type": "application/json"})]
    verify += [
        server.request("POST", "verify", b"{}", {"Content-Type": "application/json"})
        for _ in range(3)
    ]
    assert [status for status, _, _ in verify] == [400, 400, 400, 429]
    status, headers, body = verify[-1]
    assert 1 <= int(headers["Retry-After"]) <= 5
    assert b"too many verify requests" in body
    lookups = [server.get("tokens/01")[0] for _ in range(3)]
    assert lookups[2] == 429 and 429 not in lookups[:2]
    # each kind has its own bucket: time-stamp requests were not spent by the others
    for i in range(5):
        status, _, reply = server.post_query(make_request(b"limited %d" % i))
        assert status == 200 and failure_of(reply)[0] == "granted"
    status, headers, _ = server.post_query(make_request(b"one too many"))
    assert status == 429 and "Retry-After" in headers
    time.sleep(5.2)  # one request back in every bucket
    status, _, reply = server.post_query(make_request(b"after the wait"))
    assert status == 200 and failure_of(reply)[0] == "granted"
    assert "Traceback" not in server.log()


def test_time_stamp_requests_are_not_limited_by_default(make_server) -> None:
    server = make_server().start()
    statuses = {server.post_query(make_request(b"free %d" % i))[0] for i in range(300)}
    assert statuses == {200}
