"""Key rollover without downtime, end to end: the real `tsa keys` commands on a SoftHSM
token of the test's own, a real `tsa serve` under continuous load, and the openssl
binary verifying the tokens signed before the switch with the old certificate and
those after with the new one."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

import pytest
from asn1crypto import pem, tsp
from asn1crypto import x509 as asn1_x509

from tests.support.queries import failure_of, make_request, parse_response
from tests.support.tsa import TSA_BIN, Hsm, TsaServer, make_hsm, write_config


def tsa(
    config: Path, *args: str, ok: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [TSA_BIN, *args[:2], "--config", str(config), *args[2:]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def leaf_of(chain_file: Path) -> asn1_x509.Certificate:
    _, _, der = next(iter(pem.unarmor(chain_file.read_bytes(), multiple=True)))
    return asn1_x509.Certificate.load(der)


def signer_cert(reply: bytes) -> asn1_x509.Certificate:
    token = parse_response(reply)["time_stamp_token"]["content"]
    return token["certificates"][0].chosen


def gen_time(reply: bytes) -> datetime:
    token = parse_response(reply)["time_stamp_token"]["content"]
    tst: tsp.TSTInfo = token["encap_content_info"]["content"].parsed
    return tst["gen_time"].native


def openssl_verify(tmp: Path, data: bytes, reply: bytes, ca: Path, untrusted: Path) -> str:
    (tmp / "d.bin").write_bytes(data)
    (tmp / "r.tsr").write_bytes(reply)
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(tmp / "r.tsr"), "-data", str(tmp / "d.bin")]
        + ["-CAfile", str(ca), "-untrusted", str(untrusted)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout + result.stderr


def ops_kinds(server: TsaServer) -> list[dict]:
    with sqlite3.connect(server.workdir / "ops.sqlite") as db:
        rows = db.execute("SELECT token FROM entries ORDER BY idx").fetchall()
    return [json.loads(row[0]) for row in rows]


def new_key(config: Path, tmp: Path, label: str, days: int = 825) -> Path:
    """generate -> csr -> the development CA signs -> the chain file."""
    tsa(config, "keys", "generate", "--label", label)
    csr = tmp / f"{label}.csr"
    tsa(config, "keys", "csr", "--label", label, "--common-name", f"TSA {label}", "--out", str(csr))
    chain = tmp / f"{label}-issued.pem"
    tsa(config, "keys", "dev-sign", str(csr), "--out", str(chain), "--days", str(days))
    return chain


@pytest.fixture
def own_hsm(tmp_path: Path, softhsm_conf: Path) -> Hsm:
    return make_hsm(tmp_path / "hsm", softhsm_conf)


class Load:
    """A thread posting time-stamp queries back to back; every reply kept."""

    def __init__(self, server: TsaServer) -> None:
        self.server, self.replies, self.stop = server, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            data = b"document %d" % n
            n += 1
            try:
                status, _, body = self.server.post_query(make_request(data))
            except OSError as exc:
                self.replies.append((data, None, repr(exc)))
                continue
            self.replies.append((data, body if status == 200 else None, status))

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def test_rotation_under_load_restart_and_sighup(own_hsm, tmp_path, ntp, request) -> None:
    server = TsaServer(tmp_path / "srv", own_hsm, ntp.address)
    request.addfinalizer(server.stop)  # also when an assertion fails half-way
    config = server.config_path
    old_leaf = leaf_of(own_hsm.chain_file)
    chain2 = new_key(config, tmp_path, "tsa-2")
    refused = tsa(config, "keys", "activate", "--label", "tsa-2", "--at", "now", ok=False)
    assert "no imported chain" in refused.stderr
    tsa(config, "keys", "import-chain", "--label", "tsa-2", str(chain2))
    server.start()
    with Load(server) as load, Load(server) as load2:
        time.sleep(0.5)
        at = datetime.now(UTC) + timedelta(seconds=3)
        # From the state directory, as the service runs: the CLI finds the server's PID
        # file and tells it (SIGHUP) to read the schedule now.
        out = tsa(
            config, "keys", "activate", "--label", "tsa-2", "--at", at.isoformat(),
            cwd=server.workdir,
        )  # fmt: skip
        assert "activates at" in out.stdout and "was told" in out.stdout
        while datetime.now(UTC) < at + timedelta(seconds=1.5):
            time.sleep(0.1)
    replies = load.replies + load2.replies
    failed = [r for r in replies if r[1] is None or failure_of(r[1])[0] != "granted"]
    assert not failed, failed[:3]
    new_leaf = leaf_of(chain2)
    before = [r for r in replies if signer_cert(r[1]).dump() == old_leaf.dump()]
    after = [r for r in replies if signer_cert(r[1]).dump() == new_leaf.dump()]
    assert len(before) + len(after) == len(replies) and len(before) > 5 and len(after) > 5
    assert "issuance failing" not in server.log() and "Traceback" not in server.log()
    at_ms = at.replace(microsecond=at.microsecond // 1000 * 1000)
    at_ms += timedelta(milliseconds=1) if at.microsecond % 1000 else timedelta(0)
    (activated,) = [e for e in ops_kinds(server) if e["kind"] == "key_activated"]
    assert activated["scheduled_at"] == at_ms.isoformat(timespec="milliseconds")[:23] + "Z"
    # The switch is at the scheduled instant when the server had the key ready by then
    # (preparing it starts worker processes: on a loaded machine it may be later).
    switched = datetime.fromisoformat(activated["activated_at"])
    assert at_ms <= switched < at_ms + timedelta(seconds=3), server.log()
    assert all(gen_time(r[1]) < switched for r in before)
    assert all(gen_time(r[1]) >= switched for r in after)
    assert "ERROR" not in server.log(), server.log()
    (tmp_path / "old.pem").write_bytes(own_hsm.chain_file.read_bytes())
    for data, reply, _ in (*before[-2:], *after[:2]):
        is_new = signer_cert(reply).dump() == new_leaf.dump()
        chain = chain2 if is_new else tmp_path / "old.pem"
        report = openssl_verify(tmp_path, data, reply, own_hsm.ca_file, chain)
        assert "Verification: OK" in report, report
    status, _, certs = server.get("certs")
    assert status == 200 and certs == chain2.read_bytes()

    # Restart: the schedule is the truth after the first activation.
    server.stop()
    kinds = [e["kind"] for e in ops_kinds(server)]
    for kind in ("key_generated", "csr_made", "chain_imported", "key_activation_scheduled"):
        assert kind in kinds, kinds
    assert activated["label"] == "tsa-2" and activated["previous_label"] == "tsa-signing"
    assert activated["certificate_sha256"] != activated["previous_certificate_sha256"]
    server.start()
    status, _, reply = server.post_query(make_request(b"after restart"))
    assert signer_cert(reply).dump() == new_leaf.dump()
    listed = json.loads(tsa(config, "keys", "list", "--json").stdout)
    states = {row["label"]: row["state"] for row in listed}
    assert states == {"tsa-signing": "retired", "tsa-2": "active"}

    # "--at now" and SIGHUP: the server switches at once and keeps serving.
    chain3 = new_key(config, tmp_path, "tsa-3")
    tsa(config, "keys", "import-chain", "--label", "tsa-3", str(chain3))
    tsa(config, "keys", "activate", "--label", "tsa-3", "--at", "now")
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, _, reply = server.post_query(make_request(b"after sighup"))
        assert status == 200 and failure_of(reply)[0] == "granted"
        if signer_cert(reply).dump() == leaf_of(chain3).dump():
            break
        time.sleep(0.1)
    else:
        pytest.fail("the server did not switch to tsa-3:\n" + server.log())
    assert server.process.poll() is None

    # POST /verify knows every key this TSA signed with, not only the active one.
    for data, reply, _ in (before[-1], after[0]):
        body = {"token": base64.b64encode(reply).decode(), "digest": sha256(data).hexdigest()}
        status, _, answer = server.request(
            "POST", "/verify", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        report = json.loads(answer)
        assert status == 200 and report["valid"] is True, report
        assert report["issued_by_this_tsa"] is True and report["ledger"]["found"] is True
    server.stop()


def test_refusals_leave_the_schedule_unchanged(own_hsm, tmp_path) -> None:
    config = write_config(
        tmp_path / "tsa.toml",
        {
            "pkcs11": own_hsm.pkcs11,
            "certificates": own_hsm.certificates,
            "tsa": {"key_usage_months": 1},
            "ledger": {"ops_path": str(tmp_path / "ops.sqlite")},
        },
    )
    chain_a = new_key(config, tmp_path, "key-a")
    tsa(config, "keys", "generate", "--label", "key-b")
    mismatch = tsa(config, "keys", "import-chain", "--label", "key-b", str(chain_a), ok=False)
    assert "does not match the signing key" in mismatch.stderr
    missing = tsa(config, "keys", "activate", "--label", "key-b", "--at", "now", ok=False)
    assert "has no imported chain" in missing.stderr
    disordered = tmp_path / "disordered.pem"
    disordered.write_bytes(chain_a.read_bytes() * 2)  # a certificate not issued by the next
    unlinked = tsa(config, "keys", "import-chain", "--label", "key-a", str(disordered), ok=False)
    assert "is not issued by certificate" in unlinked.stderr
    tsa(config, "keys", "import-chain", "--label", "key-a", str(chain_a))
    schedule = Path(own_hsm.chain_file).parent / "key-schedule.json"
    before = schedule.read_bytes()
    assert schedule.stat().st_mode & 0o077 == 0
    late = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    ended = tsa(config, "keys", "activate", "--label", "key-a", "--at", late, ok=False)
    assert "usage period ended" in ended.stderr
    past = tsa(
        config, "keys", "activate", "--label", "key-a", "--at", "2020-01-01T00:00Z", ok=False
    )
    assert "in the past" in past.stderr
    zoneless = tsa(config, "keys", "activate", "--label", "key-a", "--at", "2030-01-01", ok=False)
    assert "no time zone" in zoneless.stderr
    bad = tsa(config, "keys", "generate", "--label", "../x", ok=False)
    assert "key label" in bad.stderr
    assert schedule.read_bytes() == before
    listed = tsa(config, "keys", "list").stdout
    assert "key-a" in listed and "imported" in listed and "tsa-signing" in listed
