"""Trademark complaints (H-13) against a real `tsa serve`: a registered-mark holder
complains (its proof a real evidence item of its organisation), the operator dismisses
then upholds through the HTTP API and `tsa names decide`; every event is time-stamped
by the TSA and in the operations log, and the state survives a restart."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.accounts.test_http import Client, tsa_accounts
from tests.support.names_server import start_names_server
from tests.web.test_names_admin_http import _item
from tests.web.test_names_http import tsa_names
from tsa_server.rfc3161.verify import VerifyOptions, load_certificates, verify_token

pytestmark = pytest.mark.both_backends

HANDLE = "星辰"
MARK = {"kind": "R", "filed_at": "2015-03-01", "registration_number": "第7654321号"}


def url(suffix: str = "") -> str:
    return f"/api/v1/names/{quote(HANDLE)}{suffix}"


@pytest.fixture
def complaint_server(make_server, tmp_path: Path, hsm):
    server, orgs = start_names_server(make_server, tmp_path, ("A", "B", "Op"))
    clients = {
        n: Client(
            server,
            tsa_accounts(
                server, "create-key", "--org", orgs[n], "--role", "owner", "--scope",
                "admin,read,deposit",
            ),
        )
        for n in orgs
    }  # fmt: skip
    yield server, orgs, clients
    server.stop()


def test_complaint_dismissed_then_upheld(complaint_server, tmp_path, hsm) -> None:
    server, orgs, c = complaint_server
    status, _, body = c["A"].call(
        "POST", "/api/v1/names/applications", {"handle": HANDLE, "shop_name": "星辰数码"}
    )
    assert status == 201 and body["status"] == "active", body
    b_item, _ = _item(server, orgs["B"], "商标注册证 B".encode())
    a_item, _ = _item(server, orgs["A"], "商标注册证 A".encode())

    def complain(who: str, **over):
        payload = {"shop_name": "星辰官方", "mark": MARK, "proof": {"item_id": b_item}, **over}
        return c[who].call("POST", url("/complaints"), payload)

    # refusals: clear 4xx, nothing logged
    for over, code, reason in (
        ({"mark": {**MARK, "kind": "TM"}}, 400, "registered_mark_required"),
        ({"proof": {"item_id": a_item}}, 400, "evidence_not_found"),
        ({"mark": {**MARK, "text": "月亮"}}, 400, "mark_mismatch"),
        ({"proof": None}, 400, None),
        ({"shop_name": "月亮店"}, 400, "not_in_shop_name"),
        ({"colour": "red"}, 400, None),
    ):
        status, _, body = complain("B", **over)
        assert status == code and body["error"] and body.get("reason") == reason, (over, body)
    status, _, body = complain("A", proof={"item_id": a_item})
    assert (status, body["reason"]) == (409, "self_complaint")
    status, _, body = c["B"].call("POST", "/api/v1/names/%E6%97%A0%E4%BA%BA/complaints", {
        "shop_name": "无人店", "mark": {**MARK, "text": "无人"}, "proof": {"item_id": b_item},
    })  # fmt: skip
    assert (status, body["reason"]) == (409, "not_held")

    # filed: pending, the holder unchanged
    status, _, body = complain("B", statement="注册商标第7654321号")
    assert status == 202 and body["status"] == "active", body
    filed = json.loads(base64.b64decode(body["event"]["canonical"]))
    assert filed["kind"] == "trademark_complaint_filed"
    assert filed["data"]["proof"]["evidence_item"] == b_item
    assert filed["data"]["holder"] == orgs["A"]
    assert (complain("B")[0], complain("B")[2]["reason"]) == (409, "complaint_pending")
    _, _, st = c["Op"].call("GET", url())
    assert st["complaints"] == 1 and st["complaint_by"] == [orgs["B"]]
    assert st["holder"]["shop"] == orgs["A"]
    _, _, st = c["B"].call("GET", url())
    assert st["complained"] is True and "complaint_by" not in st

    # the decision: operators only, complaint + verdict
    decision = url("/decision")
    assert c["A"].call("POST", decision, {"complaint": orgs["B"], "verdict": "uphold"})[0] == 403
    for bad in (
        {"complaint": orgs["B"], "verdict": "certify"},
        {"complaint": orgs["B"]},
        {"complaint": orgs["B"], "brand": orgs["B"], "verdict": "uphold"},
    ):
        assert c["Op"].call("POST", decision, bad)[0] == 400, bad
    status, _, body = c["Op"].call("POST", decision, {"complaint": orgs["A"], "verdict": "uphold"})
    assert (status, body["reason"]) == (409, "no_complaint")
    status, _, body = c["Op"].call(
        "POST", decision, {"complaint": orgs["B"], "verdict": "dismiss", "note": "类别不符"}
    )
    assert status == 200 and body["event"]["kind"] == "trademark_complaint_dismissed", body
    _, _, st = c["B"].call("GET", url())
    assert st["holder"]["shop"] == orgs["A"] and st["complaints"] == 0

    # filed again, upheld through the operator's command line
    assert complain("B")[0] == 202
    out = tsa_names(
        server, "decide", HANDLE, "--uphold", orgs["B"], "--note", "注册证已核验",
        env={"TSA_API_KEY": c["Op"].token},
    )  # fmt: skip
    body = json.loads(out.stdout)
    assert body["status"] == "active" and body["event"]["kind"] == "trademark_complaint_upheld"
    upheld = json.loads(base64.b64decode(body["event"]["canonical"]))["data"]
    assert (upheld["former_shop"], upheld["shop_name"]) == (orgs["A"], "星辰官方")
    _, _, st = c["A"].call("GET", url())
    assert st["holder"]["shop"] == orgs["B"] and "hold" not in st
    # no hold for the former holder: nothing to reclaim, and its own complaint is moot
    status, _, body = c["A"].call("POST", url("/reclaim"), {"shop_name": "星辰数码"})
    assert (status, body["reason"]) == (409, "nothing_to_reclaim")
    status, _, body = complain("A", proof={"item_id": a_item})
    assert (status, body["reason"]) == (409, "holder_has_mark")

    # the former holder's history records the loss; every event verifies
    status, _, hist = c["A"].call("GET", url("/history"))
    kinds = [e["kind"] for e in hist["events"]]
    assert kinds == [
        "applied",
        "approved",
        "trademark_complaint_filed",
        "trademark_complaint_dismissed",
        "trademark_complaint_filed",
        "trademark_complaint_upheld",
    ]
    assert "canonical" in hist["events"][-1] and "canonical" not in hist["events"][2]
    _, _, hist = c["Op"].call("GET", url("/history"))
    roots = load_certificates(hsm.ca_file.read_bytes())
    logged = server.ops_events()
    for e in hist["events"]:
        digest = hashlib.sha256(base64.b64decode(e["canonical"]))
        assert e["sha256"] == digest.hexdigest()
        report = verify_token(
            base64.b64decode(e["token"]), VerifyOptions(trust_roots=roots, digest=digest.digest())
        )
        assert report.valid, [ch for ch in report.checks if not ch.passed]
        match = [x for x in logged if x.get("kind") == "name_event" and x["seq"] == e["seq"]]
        assert len(match) == 1 and match[0]["sha256"] == e["sha256"]
        assert match[0]["event_kind"] == e["kind"]

    # durable: a restarted server has the new holder and its mark
    server.stop()
    server.start()
    _, _, st = c["A"].call("GET", url())
    assert st["holder"] == {**st["holder"], "shop": orgs["B"], "shop_name": "星辰官方"}
    status, _, body = complain("A", proof={"item_id": a_item})
    assert (status, body["reason"]) == (409, "holder_has_mark")
