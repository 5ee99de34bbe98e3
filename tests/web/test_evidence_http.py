"""The evidence and fee endpoints against a real `tsa serve` (SoftHSM key, SQLite,
loopback HTTP), with organisations, keys and credit lots made by the `tsa accounts` /
`tsa fees` CLI on the same configuration: deposits (hash-only, batch, stored, a 300 MiB
streamed upload), credits racing under concurrency, refunds when the TSA cannot
time-stamp, cross-account refusals, storage expiry through `tsa evidence renew-run`,
and tokens that `openssl ts -verify` accepts against the deposited file."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tsa import TSA_BIN, TsaServer, evidence_settings
from tsa_server.evidence import client

pytestmark = pytest.mark.both_backends

FORM = {"depositor": "张三 (Zhang San)", "work_content": "a product photo", "statement": "mine"}


def tsa(server: TsaServer, group: str, command: str, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        [TSA_BIN, group, command, "--config", str(server.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class Api:
    server: TsaServer
    key: str | None
    org: str = ""

    def call(self, method: str, path: str, body=None, headers=None, *, raw: bool = False):
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes) and not hasattr(body, "__next__"):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        status, reply_headers, data = client.call(
            self.server.url, self.key, method, path, body, headers
        )
        assert status < 500 or status == 503, data[:500]
        if raw:
            return status, reply_headers, data
        assert reply_headers.get("Content-Type", "").startswith("application/json"), data[:200]
        return status, reply_headers, json.loads(data)

    def get(self, path: str):
        return self.call("GET", path)

    def post(self, path: str, body=None, headers=None):
        return self.call("POST", path, {} if body is None else body, headers)

    def deposit(self, sha256: str, **fields):
        return self.post("/api/v1/deposits", {"sha256": sha256, **FORM, **fields})

    def upload(self, metadata: dict, files):
        return client.upload(self.server.url, self.key, metadata, files)

    def balance(self) -> int:
        return self.get("/api/v1/credits")[2]["balance"]


def new_org(server: TsaServer, name: str, units: int = 0, scopes: str = "admin,read,deposit"):
    org = tsa(server, "accounts", "create-org", name)
    key = tsa(server, "accounts", "create-key", "--org", org, "--role", "owner", "--scope", scopes)
    if units:
        tsa(server, "fees", "grant", "--org", org, "--units", str(units), "--key", "first")
    return Api(server, key, org)


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return make_server(
        evidence=evidence_settings(tmp_path, max_upload_bytes=400 << 20, renewal_interval_s=0.5)
    ).start()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_with_openssl(tsr: bytes, data_file: Path, ca_file: Path, tmp_path: Path) -> str:
    reply = tmp_path / f"{data_file.name}.tsr"
    reply.write_bytes(tsr)
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(data_file),
            "-in",
            str(reply),
            "-CAfile",
            str(ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


def ca_of(server: TsaServer) -> Path:
    for line in server.config_path.read_text().splitlines():
        if line.startswith("ca = "):
            return Path(json.loads(line[5:]))
    raise AssertionError("no CA in the config")


def chain_of(server: TsaServer) -> Path:
    for line in server.config_path.read_text().splitlines():
        if line.startswith("chain = "):
            return Path(json.loads(line[8:]))
    raise AssertionError("no chain in the config")


def ledger_has(server: TsaServer, serial: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        status, _, body = server.get(f"ledger/tokens/lookup/serial/{serial}")
        matches = json.loads(body)["matches"] if status == 200 else []
        if matches:
            return matches[0]
        assert time.monotonic() < deadline, "token never reached the ledger"
        time.sleep(0.1)


def stamped(server: TsaServer, digests: list[str]) -> set[str]:
    """Which of these SHA-256 digests a token in the ledger certifies."""
    with server.ledger() as reader:
        return {e.imprint.hex() for e in reader.entries()} & set(digests)


def ops_event(server: TsaServer, index: int) -> dict:
    return server.ops_events()[index]


# ----------------------------------------------------------------------------- tests


def test_hash_only_deposits_batches_and_tokens(server: TsaServer, tmp_path: Path) -> None:
    a = new_org(server, "Shop A", units=4)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 a product photo " * 1000)
    digest = sha(photo.read_bytes())

    status, _, body = a.deposit(digest, file_name="photo.jpg", size=photo.stat().st_size)
    assert status == 201, body
    [item] = body["items"]
    assert item["mode"] == "HASH_ONLY" and item["sha256"] == digest and item["storage"] is None
    assert item["depositor"] == FORM["depositor"] and item["work_content"] == FORM["work_content"]
    assert body["balance"] == 3 and body["failed"] == []  # T-3: exactly one unit

    # the token: in the ledger, from this TSA, and openssl verifies it against the file
    entry = ledger_has(server, item["serial"])
    assert entry["index"] == item["ledger_index"]
    status, headers, tsr = a.call("GET", f"/api/v1/items/{item['id']}/token.tsr", raw=True)
    assert status == 200 and headers["Content-Type"] == "application/timestamp-reply"
    out = verify_with_openssl(tsr, photo, ca_of(server), tmp_path)
    assert "Verification: OK" in out, out
    # the evidence record went to the operations log (a commitment, no metadata)
    event = ops_event(server, item["ops_index"])
    assert event["kind"] == "evidence_item" and event["item"] == item["id"]
    assert event["record_sha256"] == item["evidence_record_sha256"]
    assert event["serial"] == item["serial"] and FORM["depositor"] not in json.dumps(event)

    # a batch with shared metadata: one unit per item
    batch = {**FORM, "items": [{"sha256": sha(b"1")}, {"sha256": sha(b"2"), "tags": ["x"]}]}
    status, _, body = a.post("/api/v1/deposits", batch)
    assert status == 201 and len(body["items"]) == 2 and body["balance"] == 1
    assert body["items"][1]["tags"] == ["x"]

    # T-4: a batch of 3 with 1 unit: refused whole, nothing consumed, no token issued
    # (for its digests: the evidence-record scheduler may time-stamp meanwhile)
    refused = [sha(b"refused %d" % i) for i in range(3)]
    items = [{"sha256": h} for h in refused]
    status, _, body = a.post("/api/v1/deposits", {**FORM, "items": items})
    assert status == 402 and body["needed"] == 3 and body["available"] == 1
    assert "tsa fees grant" in body["error"] and "/api/v1/credits" in body["error"]
    assert a.balance() == 1
    assert stamped(server, [*refused, digest]) == {digest}  # the check sees what it should

    # T-9 / P-7: field errors, all at once; the evidence time is never the client's
    status, _, body = a.post("/api/v1/deposits", {"sha256": "zz", "certified_at": "2020-01-01"})
    assert status == 422
    required = {"depositor", "work_content", "statement"}
    assert set(body["fields"]) == {"sha256", "certified_at", *required}
    assert a.balance() == 1
    for bad in ({"statement": "I\x81"}, {"work_content": "a\x00b"}, {"media_type": "x\ty"}):
        status, _, body = a.deposit(sha(b"ctl"), **bad)  # found by schemathesis
        assert status == 422, body
    assert a.balance() == 1
    assert not stamped(server, [*refused, sha(b"ctl")])

    status, _, listing = a.get("/api/v1/items")
    assert status == 200 and listing["total"] == 3 and len(listing["items"]) == 3
    status, _, credits = a.get("/api/v1/credits")
    kinds = [e["kind"] for e in credits["entries"]]
    assert kinds == ["purchase", "reserve", "consume", "reserve", "consume", "consume"]
    assert sum(e["units"] for e in credits["entries"]) == credits["balance"] == 1


def vm_hwm(server: TsaServer) -> int:
    """The server process's peak resident set (bytes)."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_stored_upload_of_300_mib_is_streamed(server: TsaServer) -> None:
    a = new_org(server, "Studio", units=3)
    status, body = a.upload(FORM, [("warm-up.bin", [b"warm up the upload path"])])
    assert status == 201, body
    before = vm_hwm(server)
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    total = 300
    expected = hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        for i in range(total):
            chunk = block[i % 32 :] + block[: i % 32]
            expected.update(chunk)
            yield chunk

    started = time.monotonic()
    status, body = a.upload(
        {**FORM, "items": [{"file_name": "../../etc/big video.mp4", "tags": ["video"]}]},
        [("../../etc/big video.mp4", chunks())],
    )
    elapsed = time.monotonic() - started
    assert status == 201, body
    [item] = body["items"]
    growth = vm_hwm(server) - before
    print(f"300 MiB upload: {elapsed:.1f} s, server peak RSS growth {growth / 2**20:.1f} MiB")
    assert item["size"] == total << 20 and item["sha256"] == expected.hexdigest()
    assert item["mode"] == "STORED" and item["storage"]["status"] == "ACTIVE"
    assert item["storage"]["fee_per_period"] == 2  # S-3: ceil(300 / 200)
    assert item["file_name"] == "big video.mp4"  # metadata only, never a path
    assert growth < 64 << 20, f"the server grew {growth} bytes for a 300 MiB upload"
    assert server.blob_size(item["sha256"]) == total << 20
    if server.backend == "sqlite":  # nothing left half-written
        assert not list((Path(server.workdir.parent) / "blobs" / "tmp").iterdir())


def test_stored_lifecycle_delete_reupload_and_dedup(server: TsaServer, tmp_path: Path) -> None:
    a = new_org(server, "A", units=5)
    b = new_org(server, "B", units=2)
    data = b"design drawing v1 " * 5000
    original = tmp_path / "drawing.dwg"
    original.write_bytes(data)
    status, body = a.upload(FORM, [str(original)])
    assert status == 201, body
    item = body["items"][0]
    assert item["file_name"] == "drawing.dwg" and item["sha256"] == sha(data)
    storage = item["storage"]
    assert storage["status"] == "ACTIVE" and storage["fee_per_period"] == 1
    assert storage["block_bytes"] == 209_715_200
    status, _, got = a.call("GET", f"/api/v1/items/{item['id']}/original", raw=True)
    assert status == 200 and got == data
    status, _, tsr = a.call("GET", f"/api/v1/items/{item['id']}/token.tsr", raw=True)
    assert "Verification: OK" in verify_with_openssl(tsr, original, ca_of(server), tmp_path)
    # the same bytes in another account: stored once, held by both
    status, body = b.upload(FORM, [("copy.dwg", [data])])
    assert status == 201
    b_item = body["items"][0]

    path = f"/api/v1/items/{item['id']}"
    status, _, body = a.post(path + "/auto-renew", {"auto_renew": False})
    assert status == 200 and body["storage"]["auto_renew"] is False
    status, _, body = a.post(path + "/auto-renew", {"auto_renew": "no"})
    assert status == 422
    # an unknown field is refused by name, and changes nothing; a near miss is named
    status, _, body = a.post(path + "/auto-renew", {"auto_renew": True, "renew": 1})
    assert status == 422 and body["fields"] == {"renew": "unknown field"}  # given already
    status, _, body = a.post(path + "/auto-renew", {"autorenew": True})
    assert status == 422
    assert body["fields"]["autorenew"] == "unknown field (did you mean auto_renew?)"
    assert a.get(path)[2]["storage"]["auto_renew"] is False
    # no deletion without the confirmation that the original was downloaded
    status, _, body = a.post(path + "/delete-original", {})
    assert status == 422 and a.get(path)[2]["storage"]["status"] == "ACTIVE"
    status, _, body = a.post(path + "/delete-original", {"confirm_downloaded": True, "x": 0})
    assert status == 422 and body["fields"] == {"x": "unknown field"}
    assert a.get(path)[2]["storage"]["status"] == "ACTIVE"
    status, _, body = a.post(path + "/delete-original", {"confirm_downloaded": True})
    assert status == 200 and body["storage"]["status"] == "ORIGINAL_DELETED"
    assert body["downloads"]["original"] is None and body["filing_status"] == "VALID"
    status, _, body = a.call("GET", path + "/original")
    assert status == 410
    status, _, _ = a.call("GET", path + "/token.tsr", raw=True)
    assert status == 200
    status, _, got = b.call("GET", f"/api/v1/items/{b_item['id']}/original", raw=True)
    assert status == 200 and got == data  # B still holds the shared blob
    status, _, body = a.post(path + "/delete-original", {"confirm_downloaded": True})
    assert status == 409  # nothing left to delete

    # other bytes are refused, nothing debited; R-11: the same bytes, paid at once
    balance = a.balance()
    octet = {"Content-Type": "application/octet-stream"}
    status, _, body = a.call("POST", path + "/reupload", b"another file", octet)
    assert status == 422 and a.balance() == balance
    status, _, body = a.call("POST", path + "/reupload", b"x", {"Content-Type": "text/plain"})
    assert status == 415
    status, _, body = a.call("POST", path + "/reupload", data, octet)
    assert status == 200, body
    assert body["storage"]["status"] == "ACTIVE" and body["storage"]["prepaid"] is True
    assert body["storage"]["term"] == 1 and a.balance() == balance - 1
    status, _, got = a.call("GET", path + "/original", raw=True)
    assert status == 200 and got == data

    # B deletes too: now no item holds the blob and it is gone from the blob store
    status, _, _ = a.post(path + "/delete-original", {"confirm_downloaded": True})
    assert status == 200 and server.blob_size(sha(data)) == len(data)
    status, _, _ = b.post(
        f"/api/v1/items/{b_item['id']}/delete-original", {"confirm_downloaded": True}
    )
    assert status == 200 and server.blob_size(sha(data)) is None


def test_other_accounts_items_are_unreachable(server: TsaServer) -> None:
    a = new_org(server, "A", units=2)
    b = new_org(server, "B", units=2)
    status, body = a.upload(FORM, [("secret.psd", [b"A's secret design"])])
    assert status == 201
    item_id = body["items"][0]["id"]
    octet = {"Content-Type": "application/octet-stream"}
    for method, suffix, payload, headers in (
        ("GET", "", None, None),
        ("GET", "/token.tsr", None, None),
        ("GET", "/original", None, None),
        ("GET", "/certificate.pdf", None, None),
        ("GET", "/kit.zip", None, None),
        ("POST", "/delete-original", {"confirm_downloaded": True}, None),
        ("POST", "/reupload", b"A's secret design", octet),
        ("POST", "/reinstate", {}, None),
    ):
        status, _, body = b.call(method, f"/api/v1/items/{item_id}{suffix}", payload, headers)
        assert status == 404, (method, suffix, status, body)
    assert b.get("/api/v1/items")[2]["items"] == []
    assert b.balance() == 2 and a.balance() == 1
    assert a.get(f"/api/v1/items/{item_id}")[2]["storage"]["status"] == "ACTIVE"
    # an organisation's own admin key cannot mint credits (only an operator's can)
    status, _, body = b.post("/api/v1/credits/lots", {"units": 100, "idempotency_key": "free"})
    assert status == 403 and b.balance() == 2
    # keys without the scope, and no key
    reader = Api(
        server,
        tsa(
            server, "accounts", "create-key", "--org", b.org, "--role", "auditor", "--scope", "read"
        ),
    )
    assert reader.deposit(sha(b"x"))[0] == 403
    assert reader.get("/api/v1/credits")[0] == 200
    assert Api(server, None).get("/api/v1/items")[0] == 401


def test_concurrent_deposits_race_for_the_last_credits(server: TsaServer, ntp) -> None:
    a = new_org(server, "Racer", units=5)

    def one(i: int) -> int:
        return a.deposit(sha(b"race %d" % i))[0]

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(16)))
    assert sorted(statuses) == [201] * 5 + [402] * 11, statuses
    status, _, credits = a.get("/api/v1/credits")
    assert credits["balance"] == 0 and credits["lots"][0]["remaining"] == 0
    assert credits["lots"][0]["used"] == 5 and credits["lots"][0]["held"] == 0
    assert a.get("/api/v1/items")[2]["total"] == 5

    # the TSA cannot time-stamp (its clock source went silent): every unit comes back
    tsa(server, "fees", "grant", "--org", a.org, "--units", "3", "--key", "second")
    ntp.silent = True
    deadline = time.monotonic() + 30
    while server.get("readyz")[0] == 200:
        assert time.monotonic() < deadline, "the clock never became unusable"
        time.sleep(0.2)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: a.deposit(sha(b"late %d" % i)), range(4)))
    failed = [r for r in results if r[0] == 503]
    assert failed and all(r[0] in (402, 503) for r in results), [r[0] for r in results]
    assert all(r[2]["failed"][0]["refunded"] and not r[2]["items"] for r in failed)
    assert a.balance() == 3  # no lost refund
    entries = a.get("/api/v1/credits?limit=1000")[2]["entries"]
    assert [e["kind"] for e in entries].count("refund") == len(failed)
    ntp.silent = False
    deadline = time.monotonic() + 30
    while server.get("readyz")[0] != 200:
        assert time.monotonic() < deadline, "the clock never came back"
        time.sleep(0.2)
    assert a.deposit(sha(b"after"))[0] == 201 and a.balance() == 2


def test_expired_original_is_locked_while_the_token_downloads(
    server: TsaServer, tmp_path: Path
) -> None:
    a = new_org(server, "Forgetful", units=1)
    data = b"a 150 MB design, in spirit"
    status, body = a.upload(FORM, [("design.ai", [data])])
    assert status == 201 and a.balance() == 0
    item = body["items"][0]
    path = f"/api/v1/items/{item['id']}"
    expires = item["storage"]["expires_at"]  # 36 months on (CURRENT SMALL, S-5)

    report = json.loads(tsa(server, "evidence", "renew-run", "--at", expires))
    assert report["expired"] == 1 and report["renewed"] == 0 and report["debited_units"] == 0
    again = json.loads(tsa(server, "evidence", "renew-run", "--at", expires))
    assert again["expired"] == again["renewed"] == again["debited_units"] == 0
    status, _, body = a.get(path)
    assert body["storage"]["status"] == "EXPIRED" and body["filing_status"] == "INVALID"
    assert body["downloads"]["original"] is None and body["storage"]["purge_at"]
    status, _, body = a.call("GET", path + "/original")
    assert status == 409 and "expired" in body["error"]
    status, _, tsr = a.call("GET", path + "/token.tsr", raw=True)
    assert status == 200
    original = tmp_path / "design.ai"
    original.write_bytes(data)
    assert "Verification: OK" in verify_with_openssl(tsr, original, ca_of(server), tmp_path)
    status, headers, pdf = a.call("GET", path + "/certificate.pdf", raw=True)
    assert status == 200 and pdf.startswith(b"%PDF"), status
    status, _, body = a.post(path + "/reinstate")
    assert status == 402  # R-14 needs the missed period paid; nothing debited

    # after the grace window the original is purged; the proofs stay
    purge = json.loads(tsa(server, "evidence", "renew-run", "--at", body_purge_at(a, path)))
    assert purge["purged"] == 1
    status, _, body = a.get(path)
    assert body["storage"]["status"] == "PURGED"
    assert a.call("GET", path + "/original")[0] == 410
    assert a.call("GET", path + "/token.tsr", raw=True)[0] == 200
    blob = Path(server.workdir.parent) / "blobs" / sha(data)[:2] / sha(data)[2:4] / sha(data)
    assert not blob.exists()
    kinds = [e["kind"] for e in a.get("/api/v1/credits")[2]["entries"]]
    assert kinds == ["purchase", "reserve", "consume", "purge"]


def body_purge_at(api: Api, path: str) -> str:
    return api.get(path)[2]["storage"]["purge_at"]


def test_refusals_are_4xx_with_json(server: TsaServer) -> None:
    a = new_org(server, "Careful", units=1)
    status, _, body = a.call("POST", "/api/v1/deposits", b"{}", {"Content-Type": "text/plain"})
    assert status == 415
    status, _, body = a.call(
        "POST", "/api/v1/deposits", b"[1]", {"Content-Type": "application/json"}
    )
    assert status == 400
    status, _, body = a.call(
        "POST", "/api/v1/deposits/upload", b"x", {"Content-Type": "application/json"}
    )
    assert status == 415
    status, _, body = a.call(
        "POST",
        "/api/v1/deposits/upload",
        b"--x\r\nbroken",
        {"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert status in (400, 422)
    status, body = a.upload({"depositor": "me"}, [("f.txt", [b"x"])])
    assert status == 422 and "items[0].work_content" in body["fields"] and a.balance() == 1
    assert "items[0].statement" in body["fields"]
    status, body = a.upload({**FORM, "items": [{"sha256": "0" * 64}]}, [("f.txt", [b"x"])])
    assert status == 422 and "items[0].sha256" in body["fields"]
    blobs = Path(server.workdir.parent) / "blobs"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []  # a refusal keeps nothing
    for path in ("/api/v1/items/nope", "/api/v1/items/nope/token.tsr", "/api/v1/items/..%2Fx"):
        assert a.call("GET", path, raw=True)[0] == 404
    assert a.call("GET", "/api/v1/items?limit=0")[0] == 400
    assert a.call("GET", "/api/v1/items?bogus=1")[0] == 400
    status, _, body = a.get("/api/v1/forecast")
    assert status == 200 and body["balance"] == 1 and len(body["months"]) == 12
    status, _, body = a.get("/api/v1/reminders")
    assert status == 200 and body["due"] == []
    assert "renewal scheduler: at start-up, then every 0.5 s" in server.log()
    assert "Traceback" not in server.log()
