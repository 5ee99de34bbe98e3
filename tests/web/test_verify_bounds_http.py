"""POST /verify against the real server under hostile input: a certification path bomb
is answered invalid, fast and with a reason, while /tsr keeps answering (latency
compared with an unloaded baseline measured in the same test); deeply nested JSON and
too many supplied certificates are 400s; and for a token of this TSA the ledger section
proves inclusion against the latest signed checkpoint, whose note it carries."""

from __future__ import annotations

import base64
import hashlib
import statistics
import threading
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ledger.checkpoint import open_checkpoint, parse_vkey
from ledger.proofs import verify_inclusion
from tests.rfc3161.pathbombs import ca_copies, copies_bomb, inter_cn
from tests.rfc3161.test_verify_ours import bare_token, stamp
from tests.rfc3161.tokenfactory import DATA, build_token, make_pki
from tests.support.latency import latencies_while, tsr_latency, wait_issuing
from tests.support.tsa import TsaServer
from tests.web.test_verify_http import post_json, post_multipart

pytestmark = pytest.mark.both_backends

ATTACKERS = 4


def _timed_verify(server: TsaServer, token: bytes) -> tuple[float, int, dict]:
    started = time.monotonic()
    status, report = post_multipart(server, ("token", token, "t.tsr"), ("data", DATA, "d"))
    return time.monotonic() - started, status, report


def _chain_failure(report: dict) -> str:
    assert report["valid"] is False and report["ledger"] is None
    failed = [c for c in report["checks"] if not c["passed"]]
    assert failed[0]["name"] == "certificate_chain", failed
    return failed[0]["reason"]


def test_path_bomb_is_answered_fast_while_tsr_keeps_answering(tsa):
    pki = make_pki("ec", 93)
    normal = build_token(pki)
    bomb = copies_bomb(pki, 50)  # 52 certificates; the server trusts none of them
    wait_issuing(tsa)
    baseline = statistics.median(tsr_latency(tsa) for _ in range(15))
    _timed_verify(tsa, normal)  # the verifier's worker processes start on first use
    time.sleep(1.0)
    verify_baseline = statistics.median(_timed_verify(tsa, normal)[0] for _ in range(5))

    answers: list[tuple[float, int, dict]] = []

    def attack(stop: threading.Event) -> None:
        while not stop.is_set():
            answers.append(_timed_verify(tsa, bomb))

    latencies = latencies_while(tsa, attack, threads=ATTACKERS, settle_s=0.3)

    assert len(answers) >= ATTACKERS
    for _, status, report in answers:
        assert status == 200
        assert _chain_failure(report).startswith("no path to a trust root: no certificate")
    # Each bomb costs a small multiple of a normal token's verification (parsing 52
    # certificates), waiting included: two verifier processes serve four attackers.
    slowest = max(elapsed for elapsed, _, _ in answers)
    assert slowest < 30 * verify_baseline + 1.0, (slowest, verify_baseline)
    assert statistics.median(latencies) < max(10 * baseline, 0.15), (baseline, latencies)
    assert tsr_latency(tsa) < 5.0


def test_oversized_bags_are_refused_with_a_reason(tsa):
    pki = make_pki("ec", 94)
    elapsed, status, report = _timed_verify(tsa, copies_bomb(pki, 200))
    assert status == 200 and report["valid"] is False and elapsed < 5.0
    failed = [c for c in report["checks"] if not c["passed"]]
    assert failed[0]["name"] == "structure"
    assert "embeds 202 certificates; this verifier reads at most 64" in failed[0]["reason"]

    copies = ca_copies(inter_cn(pki), pki.inter_key, 65)
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in copies)
    status, answer = post_multipart(
        tsa,
        ("token", build_token(pki), "t.tsr"),
        ("data", DATA, "d"),
        ("certificates", pem, "chain.pem"),
    )
    assert status == 400 and "65 given, at most 64" in answer["error"], answer


def test_deeply_nested_json_is_a_400(tsa):
    for body in (b"[" * 8192 + b"]" * 8192, b'{"token": ' + b"[" * 40 + b"]" * 40 + b"}"):
        status, headers, reply = tsa.request(
            "POST", "/verify", body, {"Content-Type": "application/json"}
        )
        assert status == 400, reply[:300]
        assert b"nested deeper than 32 levels" in reply
    assert "Traceback" not in tsa.log() and "RecursionError" not in tsa.log()


def _vkey(server: TsaServer) -> str:
    status, _, body = server.get("ledger/tokens/vkey")
    assert status == 200
    return body.decode().strip()


def test_ledger_proof_is_against_the_signed_checkpoint(tsa):
    stamped = stamp(tsa, b"proved against a signed root")
    leaf = hashlib.sha256(b"\x00" + bare_token(stamped.response)).digest()
    payload = {
        "token": base64.b64encode(stamped.response).decode(),
        "digest": hashlib.sha256(stamped.data).hexdigest(),
    }
    deadline = time.monotonic() + 20
    while True:
        status, report = post_json(tsa, payload)
        assert status == 200 and report["valid"] is True, report
        ledger = report["ledger"]
        assert ledger["found"] is True and ledger["token_matches"] is True
        if ledger["checkpoint"] is not None or time.monotonic() > deadline:
            break
        # Newer than the latest checkpoint: proved against the current, unsigned tree.
        assert "the next checkpoint signs" in ledger["checkpoint_pending"]
        time.sleep(0.2)
    assert ledger["checkpoint_pending"] is None
    checkpoint, _ = open_checkpoint(ledger["checkpoint"], parse_vkey(_vkey(tsa)).verifier())
    assert checkpoint.size == ledger["tree_size"] > ledger["index"]
    assert checkpoint.root.hex() == ledger["root"] and ledger["leaf_hash"] == leaf.hex()
    proof = [bytes.fromhex(h) for h in ledger["inclusion_proof"]]
    verify_inclusion(ledger["index"], checkpoint.size, leaf, proof, checkpoint.root)
