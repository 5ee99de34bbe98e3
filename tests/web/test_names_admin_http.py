"""Administrators editing the handle registry's word lists and weights, and brand
(Group 1) applications reviewed by an operator, against a real `tsa serve`:
admin-only, If-Match / 412, in force at once, durable across a restart, each change
time-stamped by the TSA and in the operations log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.accounts.test_http import Client, tsa_accounts
from tests.support.names_server import start_names_server
from tests.support.tsa import TsaServer
from tsa_server.evidence.records import NewItem
from tsa_server.names.sql_store import SqlNameStore
from tsa_server.names.timestamping import NamesService
from tsa_server.rfc3161.verify import VerifyOptions, load_certificates, verify_token
from tsa_server.wiring.databases import names_database, open_evidence_store

pytestmark = pytest.mark.both_backends

WORDS = "/api/v1/names/policy/words"
WEIGHTS = "/api/v1/names/policy/weights"


@pytest.fixture
def admin_server(make_server, tmp_path: Path, hsm):
    server, orgs = start_names_server(make_server, tmp_path, ("A", "B", "Op"))

    def key(org: str, role: str, scopes: str) -> Client:
        secret = tsa_accounts(
            server, "create-key", "--org", orgs[org], "--role", role, "--scope", scopes
        )
        return Client(server, secret)

    clients = {
        "A": key("A", "owner", "admin,read,deposit"),
        "B": key("B", "owner", "admin,read,deposit"),
        "Op": key("Op", "owner", "admin,read,deposit"),
        "Op-member": key("Op", "member", "read,deposit,timestamp"),
        "Op-auditor": key("Op", "auditor", "read"),
    }
    yield server, orgs, clients
    server.stop()


def check(client: Client, handle: str) -> dict:
    status, _, body = client.call("GET", "/api/v1/names/check?handle=" + quote(handle))
    assert status == 200
    return body


def verify_change(hsm, server, change: dict) -> None:
    """The change's token is this TSA's over SHA-256(canonical), and the operations
    log holds a name_policy entry with the same digest."""
    canonical = base64.b64decode(change["canonical"])
    digest = hashlib.sha256(canonical)
    assert change["sha256"] == digest.hexdigest()
    roots = load_certificates(hsm.ca_file.read_bytes())
    report = verify_token(
        base64.b64decode(change["token"]), VerifyOptions(trust_roots=roots, digest=digest.digest())
    )
    assert report.valid, [c for c in report.checks if not c.passed]
    logged = server.ops_events()
    mine = [e for e in logged if e.get("kind") == "name_policy" and e["sha256"] == change["sha256"]]
    assert len(mine) == 1 and mine[0]["version"] == change["version"]
    assert mine[0]["by"] == change["by"]


def test_admin_edits_words_and_weights(admin_server, hsm) -> None:
    server, orgs, c = admin_server
    status, headers, view = c["A"].call("GET", WORDS)
    assert status == 200 and headers["ETag"] == view["etag"] and view["version"] == 0
    assert "国家级" in view["lists"]["banned"] and "小米" in view["lists"]["brands"]
    tag = view["etag"]
    assert check(c["A"], "星辰")["valid"] is True

    edit = {"brands": {"add": ["星辰"]}, "banned": {"remove": ["国家级"]}}
    # who may edit: an operator organisation's admin-scope key only
    assert Client(server, None).call("PATCH", WORDS, edit, {"If-Match": tag})[0] == 401
    for who in ("Op-member", "Op-auditor"):
        status, headers, body = c[who].call("PATCH", WORDS, edit, {"If-Match": tag})
        assert status == 403 and "admin" in body["error"], (who, body)
    status, _, body = c["A"].call("PATCH", WORDS, edit, {"If-Match": tag})
    assert status == 403 and "operator" in body["error"]
    status, _, body = c["Op"].call("PATCH", WORDS, edit)
    assert status == 428 and "If-Match" in body["error"]
    assert c["Op"].call("POST", "/api/v1/names/policy/reload")[0] == 200  # same files
    assert c["Op"].call("GET", WORDS)[2]["etag"] == tag

    # the edit: in force for the very next check
    status, headers, body = c["Op"].call("PATCH", WORDS, edit, {"If-Match": tag})
    assert status == 200, body
    assert body["version"] == 1 and headers["ETag"] == body["etag"] != tag
    assert "星辰" in body["lists"]["brands"] and "国家级" not in body["lists"]["banned"]
    assert body["overlay"]["removed"]["banned"] == ["国家级"]
    assert check(c["A"], "星辰")["reason"] == "brand_proof_required"
    assert check(c["A"], "国家级好")["valid"] is True
    status, _, body = c["B"].call(
        "POST", "/api/v1/names/applications", {"handle": "星辰", "shop_name": "星辰数码"}
    )
    assert status == 400 and body["reason"] == "brand_proof_required"
    change = body_change = c["Op"].call("GET", "/api/v1/names/policy/changes")[2]["changes"][0]
    record = json.loads(base64.b64decode(change["canonical"]))
    assert record["by"]["org"] == orgs["Op"] and record["words"] == {
        "banned": {"add": [], "remove": ["国家级"]},
        "brands": {"add": ["星辰"], "remove": []},
    }
    verify_change(hsm, server, body_change)

    # a second administrator with the old ETag: 412 and the current one; nothing changed
    status, headers, body = c["Op"].call(
        "PATCH", WORDS, {"banned": {"add": ["最好"]}}, {"If-Match": tag}
    )
    assert status == 412 and body["etag"] == headers["ETag"] != tag
    assert check(c["A"], "最好数码")["valid"] is True
    current = body["etag"]
    # bad input: a clear 400, nothing changed
    for bad in (
        {"banned": {"add": ["a b"]}},
        {"banned": {"add": [""]}},
        {"famous": {"add": ["x"]}},
        {"banned": ["x"]},
        {"banned": {"add": ["最佳"]}},
        {"banned": {"remove": ["没有"]}},
        {},
    ):
        status, _, body = c["Op"].call("PATCH", WORDS, bad, {"If-Match": current})
        assert status == 400 and body["error"], (bad, body)
    assert (
        c["Op"].call(
            "PATCH", WORDS, b"[", {"If-Match": current, "Content-Type": "application/json"}
        )[0]
        == 400
    )

    # weights
    status, headers, w = c["B"].call("GET", WEIGHTS)
    assert status == 200 and w["weights"]["search_rate"] == "30" and w["etag"] == current
    status, _, body = c["Op"].call(
        "PATCH", WEIGHTS, {"search_rate": 45, "star_level": "5/2"}, {"If-Match": current}
    )
    assert status == 200 and body["weights"]["search_rate"] == "45", body
    assert body["weights"]["star_level"] == "5/2" and body["version"] == 2
    for bad in ({"luck": 1}, {"search_rate": -1}, {"search_rate": "x"}):
        status, _, b = c["Op"].call("PATCH", WEIGHTS, bad, {"If-Match": body["etag"]})
        assert status == 400, (bad, b)
    assert (
        c["Op-member"].call("PATCH", WEIGHTS, {"search_rate": 1}, {"If-Match": body["etag"]})[0]
        == 403
    )

    # two administrators at once with the same ETag: exactly one wins
    async def race():
        return await asyncio.gather(
            *(
                asyncio.to_thread(
                    c["Op"].call,
                    "PATCH",
                    WORDS,
                    {"banned": {"add": [w]}},
                    {"If-Match": body["etag"]},
                )
                for w in ("最好", "最优")
            )
        )

    results = asyncio.run(race())
    assert sorted(r[0] for r in results) == [200, 412], results
    won = next(r[2] for r in results if r[0] == 200)
    lost = next(r[2] for r in results if r[0] == 412)
    assert lost["etag"] == won["etag"] and won["version"] == 3
    final = won["etag"]
    changes = c["A"].call("GET", "/api/v1/names/policy/changes")[2]["changes"]
    assert [x["version"] for x in changes] == [1, 2, 3]
    verify_change(hsm, server, changes[1])

    # durable: a restarted server has the same policy in force
    server.stop()
    server.start()
    status, headers, view = c["A"].call("GET", WORDS)
    assert view["etag"] == final and "星辰" in view["lists"]["brands"]
    assert c["A"].call("GET", WEIGHTS)[2]["weights"]["search_rate"] == "45"
    assert check(c["B"], "星辰")["reason"] == "brand_proof_required"
    # and the operator tool sees what the server has in force
    from tests.web.test_names_http import tsa_names

    assert json.loads(tsa_names(server, "check", "星辰", code=2).stdout)["reason"] == (
        "brand_proof_required"
    )
    shown = json.loads(tsa_names(server, "policy").stdout)
    assert shown["etag"] == final and shown["weights"]["search_rate"] == "45"
    assert [x["version"] for x in shown["changes"]] == [1, 2, 3]
    assert "星辰" in shown["lists"]["brands"]
    # undo: back to the files' list
    status, _, body = c["Op"].call(
        "PATCH",
        WORDS,
        {"brands": {"remove": ["星辰"]}, "banned": {"add": ["国家级"]}},
        {"If-Match": final},
    )
    assert status == 200 and body["overlay"]["added"]["brands"] == []
    assert body["overlay"]["removed"]["banned"] == []
    assert check(c["A"], "星辰")["valid"] is True


def _item(server: TsaServer, org: str, content: bytes) -> tuple[str, str]:
    store = open_evidence_store(server.config())
    try:
        sha = hashlib.sha256(content).hexdigest()
        item = store.insert_item(org, NewItem("HASH_ONLY", sha, file_name="商标注册证.pdf"))
        return item.id, sha
    finally:
        store.close()


def test_brand_application_with_proof_and_operator_review(admin_server, tmp_path, hsm) -> None:
    server, orgs, c = admin_server
    apply = "/api/v1/names/applications"
    mark = {"kind": "R", "filed_at": "2010-01-01", "registration_number": "第1234567号"}
    item_id, _ = _item(server, orgs["A"], b"registration certificate of A")
    _, b_sha = _item(server, orgs["B"], b"registration certificate of B")

    # 小米 is a famous brand (conf/names/brands.txt): only a Group-1 holder may apply
    status, _, body = c["A"].call("POST", apply, {"handle": "小米", "shop_name": "小米数码"})
    assert status == 400 and body["reason"] == "brand_proof_required"
    for bad in (
        {"group": 1},
        {"group": 3},
        {"group": 1, "mark": mark},
        {"group": 2, "mark": mark},
        {"group": 1, "mark": {**mark, "kind": "X"}, "proof": {"item_id": item_id}},
        {"group": 1, "mark": {**mark, "filed_at": "yesterday"}, "proof": {"item_id": item_id}},
        {"group": 1, "mark": {**mark, "registration_number": " "}, "proof": {"item_id": item_id}},
        {"group": 1, "mark": mark, "proof": {}},
    ):
        status, _, body = c["A"].call(
            "POST", apply, {"handle": "小米", "shop_name": "小米数码", **bad}
        )
        assert status == 400 and body["error"], (bad, body)
    # the proof must be an evidence item of the applicant's own organisation
    for proof in (
        {"item_id": "itm_nope"},
        {"sha256": b_sha},
        {"item_id": item_id, "sha256": b_sha},
    ):
        status, _, body = c["A"].call(
            "POST",
            apply,
            {"handle": "小米", "shop_name": "小米数码", "group": 1, "mark": mark, "proof": proof},
        )
        assert status == 400 and body["reason"] == "evidence_not_found", (proof, body)
    status, _, body = c["A"].call(
        "POST",
        apply,
        {
            "handle": "小米",
            "shop_name": "小米官方店",
            "group": 1,
            "mark": mark,
            "proof": {"item_id": item_id},
        },
    )
    assert status == 202 and body["status"] == "pending", body
    event = json.loads(base64.b64decode(body["event"]["canonical"]))
    assert event["data"]["proof"]["evidence_item"] == item_id
    assert event["data"]["proof"]["registration_number"] == "第1234567号"

    # review: operators only, and explicit: a plain publication does not approve it
    decision = f"/api/v1/names/{quote('小米')}/decision"
    status, _, body = c["Op"].call("POST", decision, {})
    assert status == 409 and body["reason"] == "brand_review_pending"
    status, _, _ = c["A"].call("POST", decision, {"brand": orgs["A"], "verdict": "certify"})
    assert status == 403
    status, _, body = c["Op"].call("POST", decision, {"brand": orgs["A"], "verdict": "maybe"})
    assert status == 400
    status, _, body = c["Op"].call("POST", decision, {"brand": orgs["B"], "verdict": "certify"})
    assert status == 409 and body["reason"] == "not_brand_applicant"
    assert NamesService.handle_of(_reader(server), orgs["A"]) is None
    status, _, body = c["Op"].call(
        "POST", decision, {"brand": orgs["A"], "verdict": "certify", "note": "注册证已核验"}
    )
    assert status == 200 and body["status"] == "active", body
    assert body["event"]["kind"] == "brand_certified"
    _, _, st = c["B"].call("GET", f"/api/v1/names/{quote('小米')}")
    assert st["holder"]["shop"] == orgs["A"] and st["holder"]["shop_name"] == "小米官方店"
    # the evidence certificate's helper: the organisation's current handle
    reader = _reader(server)
    assert NamesService.handle_of(reader, orgs["A"]) == "小米"
    assert NamesService.handle_of(reader, orgs["B"]) is None

    # B's claim on 华为 with a digest proof, rejected: the handle is free again
    status, _, body = c["B"].call(
        "POST",
        apply,
        {
            "handle": "华为",
            "shop_name": "华为专卖",
            "group": 1,
            "mark": {**mark, "kind": "TM", "filed_at": "2020-01-01T00:00:00+08:00"},
            "proof": {"sha256": b_sha.upper()},
        },
    )
    assert status == 202, body
    # the operator's command line goes through the server
    from tests.web.test_names_http import tsa_names

    out = tsa_names(
        server,
        "decide",
        "华为",
        "--reject",
        orgs["B"],
        "--note",
        "申请人不符",
        env={"TSA_API_KEY": c["Op"].token},
    )
    body = json.loads(out.stdout)
    assert body["status"] == "free" and body["event"]["kind"] == "brand_rejected"
    status, _, hist = c["B"].call("GET", f"/api/v1/names/{quote('华为')}/history")
    assert [e["kind"] for e in hist["events"]] == ["applied", "brand_rejected"]
    roots = load_certificates(hsm.ca_file.read_bytes())
    for e in hist["events"]:
        digest = hashlib.sha256(base64.b64decode(e["canonical"])).digest()
        assert verify_token(
            base64.b64decode(e["token"]), VerifyOptions(trust_roots=roots, digest=digest)
        ).valid


class _reader:
    """Just what `NamesService.handle_of` reads: the registry's store."""

    def __init__(self, server: TsaServer) -> None:
        where = names_database(server.config())
        self.store = SqlNameStore(where, owns=not isinstance(where, Path))
