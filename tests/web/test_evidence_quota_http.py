"""REC-10 over HTTP: the monthly item quota, the API rate limits, GET /api/v1/usage and
idempotent deposits (Idempotency-Key).

Against a real `tsa serve` (SoftHSM key, SQLite, loopback HTTP) with organisations, keys
and lots made by the CLI; and, for the rules that turn on the calendar (the next Beijing
month, the 24 h life of an idempotency key), the same routes served in-process on a real
loopback listener whose evidence service and TSA share one ManualClock."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.evidence.test_service import World
from tests.support.tsa import TsaServer, evidence_settings
from tests.web.test_evidence_http import FORM, Api, new_org, sha, tsa
from tsa_server.accounts.key_rules import Role, Scope
from tsa_server.evidence import client
from tsa_server.fees import beijing
from tsa_server.web.evidence.context import EVIDENCE
from tsa_server.web.handlers import STATE, WebState, errors_middleware
from tsa_server.web.routes import add_routes

pytestmark = pytest.mark.both_backends

QUOTA = 3


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return make_server(
        evidence=evidence_settings(
            tmp_path, monthly_item_quota=QUOTA, rate_per_second=1000.0, rate_burst=1000
        )
    ).start()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def entries(api: Api) -> int:
    return len(api.get("/api/v1/credits?limit=1000")[2]["entries"])


def total_items(api: Api) -> int:
    return api.get("/api/v1/items")[2]["total"]


def upload(api: Api, metadata: dict, files: list[tuple[str, bytes]], key: str | None = None):
    boundary = "tsa-" + secrets.token_hex(8)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = client.multipart(metadata, [(n, [data]) for n, data in files], boundary)
    return api.call("POST", "/api/v1/deposits/upload", body, headers, raw=True)


def test_quota_refuses_a_whole_batch_and_usage_is_exact(server: TsaServer, tmp_path: Path) -> None:
    a = new_org(server, "Quota A", units=10)
    status, _, usage = a.get("/api/v1/usage")
    assert status == 200
    assert usage["items"] == {"used": 0, "limit": QUOTA, "remaining": QUOTA}
    assert usage["balance"] == 10
    start, end = instant(usage["window"]["start"]), instant(usage["window"]["end"])
    assert usage["window"]["start_beijing"].endswith("-01T00:00:00+08:00")
    assert usage["window"]["end_beijing"].endswith("-01T00:00:00+08:00")
    assert start <= instant(usage["at"]) < end and 28 <= (end - start).days <= 31
    assert usage["rate_limit"]["key"]["per_second"] == 1000.0
    assert usage["rate_limit"]["key"]["burst"] == 1000
    assert usage["rate_limit"]["account"]["burst"] == 4000  # factor 4 by default

    batch = {**FORM, "items": [{"sha256": sha(b"q%d" % i)} for i in range(2)]}
    assert a.post("/api/v1/deposits", batch)[0] == 201
    usage = a.get("/api/v1/usage")[2]
    assert usage["items"] == {"used": 2, "limit": QUOTA, "remaining": 1}
    assert usage["balance"] == 8

    # Two more would make 4 > 3: refused whole, nothing reserved or certified.
    before = entries(a)
    status, headers, body = a.post(
        "/api/v1/deposits", {**FORM, "items": [{"sha256": sha(b"over%d" % i)} for i in range(2)]}
    )
    assert status == 429, body
    assert body["quota"] == "monthly_item_quota"
    assert (body["used"], body["limit"], body["requested"]) == (2, QUOTA, 2)
    assert instant(body["window_end"]) == end
    retry = int(headers["Retry-After"])
    assert retry == body["retry_after"]
    answered = parsedate_to_datetime(headers["Date"])
    assert abs((end - answered).total_seconds() - retry) <= 2
    assert a.balance() == 8 and entries(a) == before and total_items(a) == 2

    # A stored upload is refused before any byte is kept once the quota is used up.
    assert a.deposit(sha(b"the third"))[0] == 201
    assert a.get("/api/v1/usage")[2]["items"] == {"used": 3, "limit": QUOTA, "remaining": 0}
    status, headers, raw = upload(a, FORM, [("photo.jpg", b"a photo")])
    assert status == 429 and json.loads(raw)["used"] == 3 and int(headers["Retry-After"]) >= 1
    assert server.blob_size(sha(b"a photo")) is None
    assert a.balance() == 7 and total_items(a) == 3

    # The quota is per organisation.
    b = new_org(server, "Quota B", units=1)
    assert b.deposit(sha(b"b's item"))[0] == 201


def test_idempotent_deposits(server: TsaServer, tmp_path: Path) -> None:
    a = new_org(server, "Idem", units=10)
    body = {"sha256": sha(b"once"), **FORM}
    first = a.call("POST", "/api/v1/deposits", body, {"Idempotency-Key": "order 42/a"}, raw=True)
    assert first[0] == 201
    grown = entries(a)
    again = a.call("POST", "/api/v1/deposits", body, {"Idempotency-Key": "order 42/a"}, raw=True)
    assert again[0] == 201 and again[2] == first[2]
    assert again[1].get("Idempotent-Replayed") == "true"
    assert entries(a) == grown and total_items(a) == 1 and a.balance() == 9

    other = {"sha256": sha(b"another"), **FORM}
    status, _, refused = a.call(
        "POST", "/api/v1/deposits", other, {"Idempotency-Key": "order 42/a"}
    )
    assert status == 422 and "different request" in refused["error"]
    for bad in ("", "x" * 101, "tab\there"):
        assert a.call("POST", "/api/v1/deposits", other, {"Idempotency-Key": bad})[0] == 400
    assert entries(a) == grown and total_items(a) == 1

    # Another organisation's identical key is its own.
    b = new_org(server, "Idem B", units=0)
    status, _, _ = b.call("POST", "/api/v1/deposits", body, {"Idempotency-Key": "order 42/a"})
    assert status == 402  # a refusal is not kept: the retry runs again
    tsa(server, "fees", "grant", "--org", b.org, "--units", "1", "--key", "late")
    status, _, deposited = b.call(
        "POST", "/api/v1/deposits", body, {"Idempotency-Key": "order 42/a"}
    )
    assert status == 201 and deposited["balance"] == 0

    # Uploads: the metadata and each file's digest make the request.
    meta = {**FORM, "tags": ["photo"]}
    one = upload(a, meta, [("p.jpg", b"pixels")], key="up-1")
    assert one[0] == 201
    two = upload(a, meta, [("p.jpg", b"pixels")], key="up-1")
    assert two[0] == 201 and two[2] == one[2] and two[1].get("Idempotent-Replayed") == "true"
    assert upload(a, meta, [("p.jpg", b"other pixels")], key="up-1")[0] == 422
    assert total_items(a) == 2 and a.balance() == 8
    assert server.blob_size(sha(b"pixels")) == 6
    assert server.blob_size(sha(b"other pixels")) is None

    # Concurrent duplicates: one deposit; the other waits (409) or gets the same body.
    race = {"sha256": sha(b"race"), **FORM}

    def send(_: int):
        return a.call("POST", "/api/v1/deposits", race, {"Idempotency-Key": "race"}, raw=True)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(send, range(2)))
    statuses = sorted(r[0] for r in results)
    assert statuses in ([201, 201], [201, 409]), statuses
    if statuses == [201, 201]:
        assert results[0][2] == results[1][2]
    assert total_items(a) == 3 and a.balance() == 7


@pytest.fixture
def limited(make_server, tmp_path: Path) -> TsaServer:
    return make_server(
        evidence=evidence_settings(
            tmp_path, rate_per_second=1.0, rate_burst=3, account_rate_factor=1
        )
    ).start()


@pytest.mark.one_backend  # the limits are counted in the server's memory, not stored
def test_rate_limits_per_key_and_per_organisation(limited: TsaServer) -> None:
    a = new_org(limited, "Busy")
    second = tsa(
        limited, "accounts", "create-key", "--org", a.org, "--role", "owner", "--scope", "read"
    )
    a2 = Api(limited, second, a.org)
    other = new_org(limited, "Quiet")  # made first: CLI runs take seconds on a busy machine
    assert [a.get("/api/v1/usage")[0] for _ in range(3)] == [200, 200, 200]
    statuses = [a.get("/api/v1/usage") for _ in range(2)]
    refused = [r for r in statuses if r[0] == 429]
    assert refused, [r[0] for r in statuses]
    status, headers, body = refused[0]
    assert headers["Retry-After"] == "1" and body["bucket"] in ("key", "account")
    assert body["per_second"] == 1.0 and body["burst"] == 3

    # The organisation's bucket (rate x 1) is spent too: its other key waits as well.
    status, headers, body = a2.get("/api/v1/credits")
    assert status == 429 and body["bucket"] == "account"
    assert other.get("/api/v1/usage")[0] == 200

    time.sleep(int(headers["Retry-After"]))
    status, _, usage = a2.get("/api/v1/usage")
    assert status == 200
    assert usage["rate_limit"]["key"] == {"per_second": 1.0, "burst": 3, "available": 2}
    assert usage["rate_limit"]["account"]["available"] <= 1
    assert "Traceback" not in limited.log()


# ------------------------------------------------------------------ in-process, ManualClock


class Served:
    """The evidence routes of `world` on a real loopback listener."""

    def __init__(self, world: World) -> None:
        self.world = world
        app = web.Application(middlewares=[errors_middleware])  # as tsa_server.app builds it
        app[STATE] = WebState(
            issuer=world.issuer,
            clock=world.clock,
            ledger=world.ledger,
            chain_pem=b"",
            max_body_bytes=1 << 20,
            evidence=world.store,
        )
        app[EVIDENCE] = world.service
        add_routes(app)
        self.runner = web.AppRunner(app)
        self.url = ""

    async def __aenter__(self) -> Served:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    async def call(self, key: str, method: str, path: str, body=None, headers=None):
        headers = dict(headers or {})
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, reply_headers, raw = await asyncio.to_thread(
            client.call, self.url, key, method, path, body, headers
        )
        return status, reply_headers, raw


def test_next_beijing_month_and_key_expiry(tmp_path: Path, hsm_config, signer, engine_db) -> None:
    world = World(tmp_path, hsm_config, signer, engine_db)
    world.service.settings = dataclasses.replace(world.service.settings, monthly_item_quota=1)
    org = world.org(units=10)
    key = world.accounts.create_key(
        org, scopes=frozenset({Scope.DEPOSIT, Scope.READ}), role=Role.OWNER
    ).secret

    def item(n: int) -> dict:
        return {"sha256": hashlib.sha256(b"%d" % n).hexdigest(), **FORM}

    async def run() -> None:
        async with Served(world) as served:
            world.at(beijing(2024, 3, 31, 23, 59, 0))
            assert (await served.call(key, "POST", "/api/v1/deposits", item(1)))[0] == 201
            status, headers, raw = await served.call(key, "POST", "/api/v1/deposits", item(2))
            assert status == 429 and headers["Retry-After"] == "60"
            assert json.loads(raw)["window_end"] == "2024-03-31T16:00:00Z"
            world.at(beijing(2024, 4, 1, 0, 0, 0))  # the next Beijing month
            status, _, raw = await served.call(key, "GET", "/api/v1/usage")
            usage = json.loads(raw)
            assert usage["items"] == {"used": 0, "limit": 1, "remaining": 1}
            assert usage["window"]["start_beijing"] == "2024-04-01T00:00:00+08:00"
            assert usage["window"]["end_beijing"] == "2024-05-01T00:00:00+08:00"
            assert usage["rate_limit"] is None  # no limiter on this app
            assert (await served.call(key, "POST", "/api/v1/deposits", item(2)))[0] == 201
            assert (
                json.loads((await served.call(key, "GET", "/api/v1/usage"))[2])["items"]["used"]
                == 1
            )

            # An idempotency key answers for 24 h, then is forgotten.
            world.service.settings = dataclasses.replace(
                world.service.settings, monthly_item_quota=0
            )
            world.at(beijing(2024, 4, 2, 9, 0, 0))
            headers = {"Idempotency-Key": "daily"}
            first = await served.call(key, "POST", "/api/v1/deposits", item(3), headers)
            assert first[0] == 201
            world.at(beijing(2024, 4, 3, 8, 59, 59))
            again = await served.call(key, "POST", "/api/v1/deposits", item(3), headers)
            assert again[0] == 201 and again[2] == first[2]
            assert world.service.balance(org) == 7
            world.at(beijing(2024, 4, 3, 9, 0, 0))
            later = await served.call(key, "POST", "/api/v1/deposits", item(3), headers)
            assert later[0] == 201 and later[2] != first[2]
            assert "Idempotent-Replayed" not in later[1]
            assert world.service.balance(org) == 6

    asyncio.run(run())
    assert world.service.usage(org, beijing(2024, 4, 30, 23, 0)).used == 3
    assert world.service.usage(org, beijing(2024, 3, 1) + timedelta(hours=1)).used == 1
