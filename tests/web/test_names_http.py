"""The handle (字号) endpoints against a real `tsa serve`: the live check, a race for one
handle, cross-account changes refused, contests seen by their contenders only, and a
history whose every event carries a TSA token that verifies and is in the operations log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.accounts.test_http import Client, tsa_accounts
from tests.support.names_server import start_names_server
from tests.support.tsa import TSA_BIN
from tsa_server.rfc3161.verify import VerifyOptions, load_certificates, verify_token
from tsa_server.web import routes

pytestmark = pytest.mark.both_backends

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def names_server(make_server, tmp_path: Path, hsm):
    server, orgs = start_names_server(make_server, tmp_path, ("A", "B", "C", "Op"))
    keys = {
        n: tsa_accounts(
            server,
            "create-key",
            "--org",
            org,
            "--role",
            "owner",
            "--scope",
            "admin,read,deposit,timestamp",
        )
        for n, org in orgs.items()
    }
    clients = {n: Client(server, k) for n, k in keys.items()}
    return server, orgs, clients


def url(handle: str, tail: str = "") -> str:
    return f"/api/v1/names/{quote(handle, safe='')}{tail}"


def test_live_check_counts_bytes_without_a_key(names_server) -> None:
    server, _, _ = names_server
    anon = Client(server, None)
    status, headers, body = anon.call("GET", "/api/v1/names/check?handle=" + quote("星辰"))
    assert status == 200 and body == {
        **body,
        "handle": "星辰",
        "bytes": 4,
        "valid": True,
        "reason": None,
    }
    assert headers["Cache-Control"] == "no-store"
    _, _, body = anon.call("GET", "/api/v1/names/check?handle=" + quote("ａｂ星"))  # NFKC
    assert (body["handle"], body["bytes"], body["valid"]) == ("ab星", 4, True)
    _, _, body = anon.call("GET", "/api/v1/names/check?handle=" + quote("星"))
    assert (body["bytes"], body["valid"], body["reason"]) == (2, False, "too_short")
    _, _, body = anon.call("GET", "/api/v1/names/check?handle=" + quote("星辰大海星辰大海"))
    assert (body["bytes"], body["valid"], body["reason"]) == (16, False, "too_long")
    _, _, body = anon.call("GET", "/api/v1/names/check?handle=" + quote("旗舰店"))
    assert (body["valid"], body["reason"]) == (False, "all_restricted")
    q = "handle=" + quote("星辰") + "&shop_name=" + quote("数码星辰")
    _, _, body = anon.call("GET", "/api/v1/names/check?" + q)
    assert (body["valid"], body["reason"], body["shop_name"]["bytes"]) == (False, "not_prefix", 8)
    _, _, body = anon.call("GET", "/api/v1/names/check?handle=" + quote("a b!"))
    assert (body["bytes"], body["valid"], body["reason"]) == (None, False, "bad_character")
    status, _, body = anon.call("GET", "/api/v1/names/check")
    assert status == 400 and body["error"]


def test_race_history_tokens_and_cross_account(names_server, hsm) -> None:
    server, orgs, c = names_server

    async def race():
        return await asyncio.gather(
            asyncio.to_thread(
                c["A"].call,
                "POST",
                "/api/v1/names/applications",
                {"handle": "星辰", "shop_name": "星辰数码"},
            ),
            asyncio.to_thread(
                c["B"].call,
                "POST",
                "/api/v1/names/applications",
                {"handle": "星辰", "shop_name": "星辰服饰"},
            ),
        )

    results = asyncio.run(race())
    statuses = sorted(r[0] for r in results)
    # open registration: published at once; the first complete application is unique and
    # approved, the other finds the handle taken and is told so
    assert statuses == [201, 409], results
    winner = "A" if results[0][0] == 201 else "B"
    loser = "B" if winner == "A" else "A"
    won = results[0][2] if winner == "A" else results[1][2]
    lost = results[1][2] if winner == "A" else results[0][2]
    assert won["status"] == "active" and won["event"]["kind"] == "approved"
    assert lost["reason"] == "taken" and "星辰" in lost["error"]

    # status: the holder, seen by anyone with a key
    status, _, body = c[loser].call("GET", url("星辰"))
    assert status == 200 and body["status"] == "active"
    assert body["holder"]["shop"] == orgs[winner] and "changes" not in body
    _, _, body = c[winner].call("GET", url("星辰"))
    assert body["changes"]["used"] == 0 and body["changes"]["left"] == 5

    # cross-account change, release, objection: refused; nothing happened
    for tail, payload in (
        ("/change", {"custom": "抢来的"}),
        ("/release", {}),
        ("/release", {"cause": "penalty"}),
    ):
        status, _, body = c[loser].call("POST", url("星辰", tail), payload)
        assert status == 403, (tail, body)
    status, _, body = c[loser].call("POST", url("星辰", "/objections"), {"statement": "x"})
    assert status == 409 and body["reason"] == "not_contested"
    status, _, body = c[loser].call("POST", url("星辰", "/decision"), {})
    assert status == 403
    # the holder may change the custom part
    status, _, body = c[winner].call("POST", url("星辰", "/change"), {"custom": "旗舰店"})
    assert status == 200 and body["event"]["kind"] == "custom_changed"
    _, _, body = c[winner].call("GET", url("星辰"))
    assert body["holder"]["shop_name"] == "星辰旗舰店"

    # bad input: 400/404 JSON, never 5xx
    for payload in (
        {},
        {"handle": 3, "shop_name": "x"},
        {"handle": "星辰", "shop_name": "星辰", "extra": 1},
    ):
        status, _, body = c["C"].call("POST", "/api/v1/names/applications", payload)
        assert status == 400 and body["error"]
    status, _, body = c["C"].call(
        "POST", "/api/v1/names/applications", {"handle": "月亮", "shop_name": "星辰月亮"}
    )
    assert status == 400 and body["reason"] == "not_prefix"
    status, _, body = c["C"].call("GET", url("无人", "/history"))
    assert status == 404
    status, _, body = c["C"].call("POST", url("无人", "/change"), {"custom": "x"})
    assert status == 404

    # history: applied, approved, custom_changed - each with a token over its bytes
    status, _, body = c[winner].call("GET", url("星辰", "/history"))
    assert status == 200
    kinds = [e["kind"] for e in body["events"]]
    assert kinds == ["applied", "approved", "custom_changed"]
    roots = load_certificates(hsm.ca_file.read_bytes())
    logged = server.ops_events()
    for e in body["events"]:
        canonical = base64.b64decode(e["canonical"])
        digest = hashlib.sha256(canonical)
        assert e["sha256"] == digest.hexdigest()
        report = verify_token(
            base64.b64decode(e["token"]), VerifyOptions(trust_roots=roots, digest=digest.digest())
        )
        assert report.valid, [ch for ch in report.checks if not ch.passed]
        assert report.fields.gen_time_text[:19] == e["gen_time"][:19]
        assert json.loads(canonical)["seq"] == e["seq"]
        match = [x for x in logged if x.get("kind") == "name_event" and x["seq"] == e["seq"]]
        assert len(match) == 1 and match[0]["sha256"] == e["sha256"]
        assert match[0]["handle"] == "星辰" and match[0]["event_kind"] == e["kind"]
    # another account sees the tokens but not the event bytes of the holder
    _, _, body = c[loser].call("GET", url("星辰", "/history"))
    assert all("canonical" not in e and e["token"] for e in body["events"])

    # the holder releases; during the hold the other account cannot reclaim or apply
    status, _, body = c[winner].call("POST", url("星辰", "/release"), {})
    assert status == 200 and body["status"] == "on_hold" and body["event"]["kind"] == "released"
    status, _, body = c[loser].call("POST", url("星辰", "/reclaim"), {"shop_name": "星辰服饰"})
    assert status == 409 and body["reason"] == "on_hold"
    status, _, body = c[winner].call("POST", url("星辰", "/reclaim"), {"shop_name": "星辰数码"})
    assert status == 200 and body["status"] == "active", body

    # the operator's command line reads the same database
    out = tsa_names(server, "history", "星辰")
    assert [e["kind"] for e in json.loads(out.stdout)["events"]][-2:] == ["released", "reclaimed"]
    assert json.loads(tsa_names(server, "show", "星辰").stdout)["status"] == "active"
    out = tsa_names(server, "check", "星辰", code=2)
    assert json.loads(out.stdout)["reason"] == "taken"
    out = tsa_names(server, "check", "月亮", "--shop-name", "月亮之上")
    assert json.loads(out.stdout)["bytes"] == 4


def tsa_names(server, *args: str, code: int = 0, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [TSA_BIN, "names", args[0], "--config", str(server.config_path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
        env=dict(os.environ, **(env or {})),
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    return result


def test_contest_shows_own_metrics_beside_the_leader_only(names_server) -> None:
    server, orgs, c = names_server
    # A holds 星辰数码 as a handle-less shop name: C's identical shop name is a duplicate
    assert (
        c["A"].call(
            "POST", "/api/v1/names/applications", {"handle": "星辰", "shop_name": "星辰数码"}
        )[0]
        == 201
    )
    status, _, body = c["C"].call(
        "POST", "/api/v1/names/applications", {"handle": "星辰数", "shop_name": "星辰数码"}
    )
    # duplicate shop name (H-15): contested even with a single applicant
    assert status == 201 and body["status"] == "contested"
    _, _, view = c["C"].call("GET", url("星辰数"))
    assert view["status"] == "contested" and view["objection_window"]["end"]
    assert view["own"]["shop"] == orgs["C"] and view["leader"]["shop"] == orgs["C"]
    assert "standings" not in view
    _, _, other = c["B"].call("GET", url("星辰数"))
    assert "own" not in other and "leader" not in other and "standings" not in other
    _, _, op = c["Op"].call("GET", url("星辰数"))
    assert [s["shop"] for s in op["standings"]] == [orgs["C"]]
    # the objection period runs: no decision yet; the leader cannot object
    status, _, body = c["Op"].call("POST", url("星辰数", "/decision"), {})
    assert status == 409 and body["reason"] == "objection_period_open"
    status, _, body = c["C"].call("POST", url("星辰数", "/objections"), {"statement": "?"})
    assert status == 409 and body["reason"] == "leader_cannot_object"
    # the operator's `tsa names decide` goes through the server and is told the same
    out = tsa_names(
        server,
        "decide",
        "星辰数",
        "--winner",
        orgs["C"],
        code=1,
        env={"TSA_API_KEY": c["Op"].token},
    )
    assert "objection_period_open" in out.stderr


def test_openapi_lists_every_api_route(names_server) -> None:
    server, _, _ = names_server
    status, _, doc = Client(server, None).call("GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    from aiohttp import web

    app = web.Application()
    routes.add_routes(app)
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/v1") and route.method != "HEAD":
            assert path in doc["paths"], path
            assert route.method.lower() in doc["paths"][path], (route.method, path)


def test_beta_race_is_contested_and_each_contender_sees_only_itself_and_the_leader(
    make_server, tmp_path: Path
) -> None:
    """H-8/H-15: inside a beta window submission order decides nothing: concurrent
    applications all wait for publication, which contests the handle."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    publish = now + timedelta(seconds=20)  # start-up + 3 applications on a busy machine

    def z(t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    policy = (REPO / "conf/names.toml").read_text().replace(
        '"names/', '"' + str(REPO / "conf/names") + "/"
    ) + (
        f'\n[beta]\nname = "test"\nshop_opened_before = {z(now + timedelta(days=1))}\n'
        f"applications_open = {z(now - timedelta(days=1))}\n"
        f"applications_close = {z(publish)}\npublish_at = {z(publish)}\n"
        f"ends_at = {z(now + timedelta(days=30))}\n"
    )
    (tmp_path / "names.toml").write_text(policy)
    server, orgs = start_names_server(
        make_server, tmp_path, ("A", "B", "C", "Op"), policy=tmp_path / "names.toml"
    )
    c = {
        n: Client(
            server,
            tsa_accounts(
                server,
                "create-key",
                "--org",
                org,
                "--role",
                "owner",
                "--scope",
                "admin,read,deposit",
            ),
        )
        for n, org in orgs.items()
    }
    shops = {"A": "星辰数码", "B": "星辰服饰", "C": "星辰家居"}

    async def race():
        return await asyncio.gather(
            *(
                asyncio.to_thread(
                    c[n].call,
                    "POST",
                    "/api/v1/names/applications",
                    {"handle": "星辰", "shop_name": shops[n]},
                )
                for n in shops
            )
        )

    results = asyncio.run(race())
    assert [r[0] for r in results] == [202, 202, 202], results
    assert all(r[2]["status"] == "pending" for r in results)
    _, _, view = c["B"].call("GET", url("星辰"))
    assert (view["status"], view["applicants"], view["applied"]) == ("pending", 3, True)
    status, _, body = c["Op"].call("POST", url("星辰", "/decision"), {})
    assert status in (400, 409) and body["reason"] in ("not_yet_published", "metrics_missing")

    import time

    time.sleep(max(0.0, (publish - datetime.now(UTC)).total_seconds() + 0.5))
    metrics = {
        orgs["A"]: {"search_rate": "9/10", "usage_days": 900, "wangwang": True},
        orgs["B"]: {"search_rate": "1/2", "usage_days": 300},
        orgs["C"]: {"search_rate": "1/10", "usage_days": 30},
    }
    status, _, body = c["Op"].call("POST", url("星辰", "/decision"), {"metrics": metrics})
    assert status == 200 and body["status"] == "contested", body
    assert body["event"]["kind"] == "contested"

    _, _, view = c["B"].call("GET", url("星辰"))
    assert view["own"]["shop"] == orgs["B"] and view["own"]["rank"] == 2
    assert view["leader"]["shop"] == orgs["A"] and view["leader"]["metrics"]["usage_days"] == 900
    assert orgs["C"] not in json.dumps(view)  # never another contender's metrics
    _, _, view = c["C"].call("GET", url("星辰"))
    assert view["own"]["rank"] == 3 and orgs["B"] not in json.dumps(view)
    # the contested event holds every standing: its bytes go to operators only
    _, _, hist = c["B"].call("GET", url("星辰", "/history"))
    assert all("canonical" not in e for e in hist["events"] if e["kind"] == "contested")
    status, _, body = c["C"].call("POST", url("星辰", "/objections"), {"statement": "我更早"})
    assert status == 201 and body["event"]["kind"] == "objected"
    status, _, body = c["A"].call("POST", url("星辰", "/objections"), {"statement": "x"})
    assert status == 409 and body["reason"] == "leader_cannot_object"
