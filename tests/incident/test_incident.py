"""`tsa incident` end to end, on a real server with a SoftHSM token and SQLite ledgers.

The server issues tokens in three bursts; `tsa incident --from/--to` must list exactly
the middle burst (compared with the ledger itself), `--key` every token of the
certificate (by its hash or its public key's). Every listed proof is checked with the
ledger's own tools (ledger.proof_file.ProofFile.verify and `tsa-ledger verify-token`),
the report with `tsa incident verify`, a tampered copy must fail, the report must reach
the operations log through the inbox and be served at its URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from ledger.checkpoint import parse_vkey
from ledger.proof_file import ProofFile
from ledger.serials import serial_text
from ledger.store.sqlite import SqliteReader
from tests.support.ntp import NtpResponder
from tests.support.queries import make_request
from tests.support.tsa import Hsm, TsaServer
from tsa_server.incident.selection import iso_ms
from tsa_server.issuance.opslog import canonical

BIN = Path(sys.executable).parent
TSA, TSA_LEDGER = str(BIN / "tsa"), str(BIN / "tsa-ledger")


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


class Setup:
    def __init__(self, server: TsaServer, workdir: Path) -> None:
        self.server, self.workdir = server, workdir
        self.incidents = server.workdir / "incidents"
        status, _, vkey = server.get("ledger/tokens/vkey")
        assert status == 200
        self.vkey = vkey.decode().strip()
        self.vkey_file = workdir / "tokens.vkey"
        self.vkey_file.write_text(self.vkey + "\n")

    def issue(self, count: int, label: bytes) -> None:
        for i in range(count):
            status, _, _ = self.server.post_query(make_request(label + b"%d" % i))
            assert status == 200
            time.sleep(0.01)

    def incident(self, *args: str) -> tuple[str, dict]:
        done = run(TSA, "incident", "--config", str(self.server.config_path), *args)
        assert done.returncode == 0, done.stderr + done.stdout
        found = re.search(r"incident report (\S+): (\d+) token", done.stdout)
        assert found, done.stdout
        report_id = found.group(1)
        data = (self.incidents / f"{report_id}.json").read_bytes()
        return report_id, json.loads(data)

    def verify(self, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return run(
            TSA,
            "incident",
            "verify",
            str(path),
            "--vkey",
            f"@{self.vkey_file}",
            "--config",
            str(self.server.config_path),
            *extra,
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, hsm: Hsm, session_ntp: NtpResponder) -> Setup:
    workdir = tmp_path_factory.mktemp("incident")
    server = TsaServer(workdir / "server", hsm, session_ntp.address).start()
    try:
        ready = Setup(server, workdir)
        ready.issue(3, b"before ")
        time.sleep(0.05)
        ready.issue(4, b"inside ")
        time.sleep(0.05)
        ready.issue(2, b"after ")
        yield ready
    finally:
        server.stop()


def _entries(setup: Setup) -> list:
    reader = SqliteReader(setup.server.ledger_path)
    try:
        return list(reader.entries())
    finally:
        reader.close()


@pytest.fixture(scope="module")
def window_report(setup: Setup) -> tuple[str, dict]:
    inside = [e for e in _entries(setup)[:9]][3:7]
    return setup.incident(
        "--from",
        iso_ms(inside[0].gen_time_ms),
        "--to",
        iso_ms(inside[-1].gen_time_ms),
        "--reason",
        "clock found 2 s fast (loss of calibration)",
    )


def test_window_selects_exactly_the_tokens_in_it(setup: Setup, window_report) -> None:
    report_id, envelope = window_report
    report = envelope["report"]
    entries = _entries(setup)
    start, end = report["selection"]["time"]["from_ms"], report["selection"]["time"]["to_ms"]
    expected = [e for e in entries[: report["checkpoint"]["size"]] if start <= e.gen_time_ms <= end]
    assert [e.index for e in expected] == [3, 4, 5, 6]
    assert [t["index"] for t in report["tokens"]] == [e.index for e in expected]
    assert [t["serial"] for t in report["tokens"]] == [serial_text(e.serial) for e in expected]
    assert [t["imprint"] for t in report["tokens"]] == [e.imprint.hex() for e in expected]
    assert report["count"] == 4 and report["reason"].startswith("clock found")
    assert report["boundaries"]["before"]["index"] == 2
    assert report["boundaries"]["after"]["index"] == 7
    assert (setup.incidents / f"{report_id}.json").stat().st_mode & 0o777 == 0o600
    assert setup.incidents.stat().st_mode & 0o777 == 0o700


def test_proofs_verify_with_the_ledger_tools(setup: Setup, window_report) -> None:
    report_id, envelope = window_report
    report = envelope["report"]
    verifier = parse_vkey(setup.vkey).verifier()
    note = report["checkpoint"]["note"]
    entries = _entries(setup)
    for item in report["tokens"]:
        path = tuple(base64.b64decode(h) for h in item["proof"])
        proof = ProofFile(item["index"], path, note)
        token = entries[item["index"]].token
        checkpoint = proof.verify(token, verifier)  # the ledger library's B.7 check
        assert checkpoint.size == report["checkpoint"]["size"]
        assert hashlib.sha256(b"\x00" + token).hexdigest() == item["leaf_hash"]
    # and `tsa-ledger verify-token`, the offline tool a relying party runs
    first = report["tokens"][0]
    token_file, proof_file = setup.workdir / "t.der", setup.workdir / "t.tlog"
    token_file.write_bytes(entries[first["index"]].token)
    proof = ProofFile(first["index"], tuple(base64.b64decode(h) for h in first["proof"]), note)
    proof_file.write_text(proof.encode())
    done = run(TSA_LEDGER, "verify-token", str(token_file), str(proof_file), "--vkey", setup.vkey)
    assert done.returncode == 0 and done.stdout.startswith("OK:"), done.stdout + done.stderr


def test_the_report_verifies_and_a_tampered_one_does_not(setup: Setup, window_report) -> None:
    report_id, envelope = window_report
    path = setup.incidents / f"{report_id}.json"
    done = setup.verify(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"OK: incident report {report_id}: 4 token(s)")
    assert "time-stamped at" in done.stdout

    serial = json.loads(json.dumps(envelope))
    serial["report"]["tokens"][1]["serial"] = "0x0100"
    tampered = setup.workdir / "serial.json"
    tampered.write_bytes(canonical(serial))
    done = setup.verify(tampered, "--tsr", str(path.with_suffix(".tsr")))
    assert done.returncode == 2, done.stdout
    assert "altered after signing" in done.stdout
    assert "time-stamp: message_imprint" in done.stdout

    proof = json.loads(json.dumps(envelope))
    hashes = proof["report"]["tokens"][2]["proof"]
    raw = bytearray(base64.b64decode(hashes[0]))
    raw[5] ^= 1
    hashes[0] = base64.b64encode(bytes(raw)).decode()
    tampered = setup.workdir / "proof.json"
    tampered.write_bytes(canonical(proof))
    done = setup.verify(tampered, "--no-timestamp")
    assert done.returncode == 2, done.stdout
    assert "inclusion proof fails" in done.stdout and "(index 5)" in done.stdout


def test_the_report_is_in_the_operations_log(setup: Setup, window_report) -> None:
    report_id, _ = window_report
    digest = hashlib.sha256((setup.incidents / f"{report_id}.json").read_bytes()).hexdigest()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        reader = SqliteReader(setup.server.workdir / "ops.sqlite")
        try:
            events = [json.loads(e.token) for e in reader.entries()]
        finally:
            reader.close()
        found = [e for e in events if e["kind"] == "incident_published"]
        if any(e["incident_id"] == report_id for e in found):
            break
        time.sleep(0.2)
    event = next(e for e in found if e["incident_id"] == report_id)
    assert event["report_sha256"] == digest
    assert event["count"] == 4 and "from_ms" in event["selection"]
    assert not list((setup.server.workdir / "ops-inbox").glob("*.json"))


def test_the_report_is_served(setup: Setup, window_report) -> None:
    report_id, _ = window_report
    status, headers, body = setup.server.get("incidents/")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert report_id in [i["id"] for i in json.loads(body)["incidents"]]
    status, headers, body = setup.server.get(f"incidents/{report_id}.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body == (setup.incidents / f"{report_id}.json").read_bytes()
    status, headers, body = setup.server.get(f"incidents/{report_id}.tsr")
    assert status == 200 and headers["Content-Type"] == "application/timestamp-reply"
    assert body == (setup.incidents / f"{report_id}.tsr").read_bytes()


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("incidents/20260101T000000Z-00000000.json", 404, "no incident report"),
        ("incidents/report.json", 400, "<id>.json or <id>.tsr"),
        ("incidents/20260101T000000Z-00000000.txt", 400, "<id>.json or <id>.tsr"),
        ("incidents/..%2Fops.sqlite", 400, "<id>.json or <id>.tsr"),
        ("incidents/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", 400, "<id>.json or <id>.tsr"),
        ("incidents/../ops.sqlite", 404, ""),
    ],
)
def test_bad_names_are_refused(setup: Setup, path: str, status: int, says: str) -> None:
    got, _, body = setup.server.get(path)
    assert got == status, body
    assert says in body.decode()


def _certificate(hsm: Hsm) -> asn1_x509.Certificate:
    data = hsm.chain_file.read_bytes()
    _, _, der = pem.unarmor(data, multiple=True).__next__()
    return asn1_x509.Certificate.load(der)


def test_key_selects_every_token_of_the_certificate(setup: Setup, hsm: Hsm) -> None:
    certificate = _certificate(hsm)
    fingerprint = hashlib.sha256(certificate.dump()).hexdigest()
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    report_id, envelope = setup.incident("--key", colons, "--reason", "key compromise drill")
    report = envelope["report"]
    size = report["checkpoint"]["size"]
    entries = _entries(setup)[:size]
    assert report["selection"]["key"]["fingerprint_kind"] == "certificate"
    assert report["selection"]["key"]["in_force"][0]["kind"] == "start"
    # one certificate signed everything: every covered entry (earlier reports' stamps too)
    assert [t["index"] for t in report["tokens"]] == [e.index for e in entries]
    assert [t["serial"] for t in report["tokens"]] == [serial_text(e.serial) for e in entries]
    done = setup.verify(setup.incidents / f"{report_id}.json")
    assert done.returncode == 0, done.stdout

    spki = hashlib.sha256(certificate.public_key.dump()).hexdigest()
    _, by_key = setup.incident("--key", spki, "--reason", "key compromise drill")
    assert by_key["report"]["selection"]["key"]["fingerprint_kind"] == "public_key"
    assert by_key["report"]["selection"]["key"]["certificates_sha256"] == [fingerprint]
    assert by_key["report"]["count"] >= len(entries)


def test_an_unknown_fingerprint_is_refused(setup: Setup) -> None:
    before = sorted(p.name for p in setup.incidents.iterdir())
    done = run(
        TSA,
        "incident",
        "--config",
        str(setup.server.config_path),
        "--key",
        "ab" * 32,
        "--reason",
        "typo",
    )
    assert done.returncode == 1
    assert "unknown fingerprint" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in setup.incidents.iterdir()) == before


def test_too_many_tokens_and_no_server_leave_nothing(setup: Setup, hsm: Hsm) -> None:
    fingerprint = hashlib.sha256(_certificate(hsm).dump()).hexdigest()
    before = sorted(p.name for p in setup.incidents.iterdir())
    base = [TSA, "incident", "--config", str(setup.server.config_path), "--key", fingerprint]
    done = run(*base, "--reason", "drill", "--max-tokens", "3")
    assert done.returncode == 1 and "more than 3 tokens match" in done.stderr, done.stderr
    assert "split the selection" in done.stderr and "Traceback" not in done.stderr
    done = run(*base, "--reason", "drill", "--url", "http://127.0.0.1:9/")
    assert done.returncode == 1 and "not reachable" in done.stderr, done.stderr
    assert sorted(p.name for p in setup.incidents.iterdir()) == before
