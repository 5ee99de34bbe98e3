"""The real server end to end: concurrency with the ledger, the fail-closed NTP clock,
and refusing to start on a bad certificate or configuration."""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509

from tests.support.queries import failure_of, make_request, parse_response
from tests.support.tsa import QUERY_TYPE, TSA_BIN, TsaServer, write_config
from tsa_server.signing.base import signature_algorithm
from tsa_server.signing.certs import to_pem
from tsa_server.signing.pkcs11 import Pkcs11Signer
from tsa_server.wiring import load_chain, token_location

pytestmark = pytest.mark.both_backends


def test_200_concurrent_requests_from_20_clients(tsa: TsaServer) -> None:
    async def client(n: int) -> list[bytes]:
        async with aiohttp.ClientSession() as session:
            replies = []
            for i in range(10):
                body = make_request(b"client %d request %d" % (n, i))
                async with session.post(
                    tsa.url, data=body, headers={"Content-Type": QUERY_TYPE}
                ) as reply:
                    assert reply.status == 200
                    replies.append(await reply.read())
            return replies

    async def run() -> list[bytes]:
        results = await asyncio.gather(*(client(n) for n in range(20)))
        return [r for replies in results for r in replies]

    replies = asyncio.run(run())
    assert len(replies) == 200
    assert all(failure_of(r)[0] == "granted" for r in replies)
    tokens = [parse_response(r)["time_stamp_token"] for r in replies]
    serials = {
        t["content"]["encap_content_info"]["content"].parsed["serial_number"].native for t in tokens
    }
    assert len(serials) == 200
    in_ledger = set(tsa.ledger_tokens())
    assert all(t.dump() in in_ledger for t in tokens)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def granted_now(server: TsaServer) -> bool:
    return failure_of(server.post_query(make_request())[2])[0] == "granted"


def refused_for_time(server: TsaServer) -> bool:
    return failure_of(server.post_query(make_request())[2]) == (
        "rejection",
        frozenset({"time_not_available"}),
    )


@pytest.mark.one_backend  # the clock gate: nothing stored
def test_clock_offset_too_large_stops_issuance_and_recovers(make_server, ntp) -> None:
    server = make_server().start()
    assert granted_now(server)
    ntp.offset = 5.0  # the reference says our clock is 5 s off
    wait_for(lambda: refused_for_time(server))
    assert server.get("/readyz")[0] == 503
    size = len(server.ledger_tokens())
    assert refused_for_time(server) and len(server.ledger_tokens()) == size
    ntp.offset = 0.0
    wait_for(lambda: granted_now(server))
    assert server.get("/readyz")[0] == 200
    log = server.log()
    assert "clock unusable" in log.lower() or "unusable" in log


@pytest.mark.one_backend  # the clock gate: nothing stored
def test_silent_ntp_server_stops_issuance_after_max_age(make_server, ntp) -> None:
    server = make_server().start()
    assert granted_now(server)
    ntp.silent = True
    wait_for(lambda: refused_for_time(server), timeout=30)
    status, _, body = server.get("/readyz")
    assert status == 503 and b"clock" in body
    ntp.silent = False
    wait_for(lambda: granted_now(server), timeout=30)


@pytest.mark.one_backend  # the clock gate: nothing stored
def test_unsynchronised_reference_is_not_trusted(make_server, ntp) -> None:
    ntp.leap = 3  # "alarm: clock not synchronised"
    server = make_server().start(wait_ready=False)
    assert refused_for_time(server)
    ntp.leap = 0
    wait_for(lambda: granted_now(server))


# --- refusing to start --------------------------------------------------------------


def serve_fails(workdir, sections) -> str:
    path = write_config(workdir / "bad.toml", sections)
    result = subprocess.run(
        [TSA_BIN, "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def reissue(hsm_config, mutate) -> bytes:
    """Re-sign the TSA certificate with the development CA key after `mutate(tbs)`."""
    chain = load_chain(hsm_config)
    cert, ca = chain[0], chain[-1]
    tbs = cert["tbs_certificate"].copy()
    mutate(tbs)
    ca_key = Pkcs11Signer(token_location(hsm_config), hsm_config.certificates.ca_key_label)
    try:
        alg = signature_algorithm(ca_key.key_spec, "sha256")
        tbs["signature"] = alg.identifier
        signature = ca_key.sign(tbs.dump(force=True), "sha256")
    finally:
        ca_key.close()
    new = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": alg.identifier,
            "signature_value": signature,
        }
    )
    return to_pem(new.dump()) + to_pem(ca.dump())


def set_extension(name: str, critical: bool, value):
    def mutate(tbs) -> None:
        extensions = [e for e in tbs["extensions"] if e["extn_id"].native != name]
        if value is not None:
            extensions.append({"extn_id": name, "critical": critical, "extn_value": value})
        tbs["extensions"] = extensions

    return mutate


def set_validity(not_before: datetime, not_after: datetime):
    def mutate(tbs) -> None:
        tbs["validity"] = {
            "not_before": asn1_x509.Time({"utc_time": not_before}),
            "not_after": asn1_x509.Time({"utc_time": not_after}),
        }

    return mutate


NOW = datetime.now(UTC).replace(microsecond=0)
BAD_CERTIFICATES = {
    "no-eku": (set_extension("extended_key_usage", True, None), "timeStamping"),
    "eku-not-critical": (set_extension("extended_key_usage", False, ["time_stamping"]), "critical"),
    "extra-eku": (
        set_extension("extended_key_usage", True, ["time_stamping", "code_signing"]),
        "no other",
    ),
    "expired": (set_validity(NOW - timedelta(days=30), NOW - timedelta(days=1)), "expired"),
    "not-yet-valid": (
        set_validity(NOW + timedelta(days=1), NOW + timedelta(days=30)),
        "not valid before",
    ),
    "no-key-usage": (set_extension("key_usage", True, None), "digitalSignature"),
}


@pytest.mark.parametrize("case", sorted(BAD_CERTIFICATES))
def test_refuses_to_start_with_a_bad_certificate(tmp_path, hsm, hsm_config, case) -> None:
    mutate, message = BAD_CERTIFICATES[case]
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(reissue(hsm_config, mutate))
    stderr = serve_fails(
        tmp_path,
        {
            "pkcs11": hsm.pkcs11,
            "certificates": dict(hsm.certificates, chain=str(chain_file)),
            "ledger": {"path": str(tmp_path / "l.sqlite")},
        },
    )
    assert message in stderr


def test_refuses_to_start_when_certificate_is_for_another_key(tmp_path, hsm) -> None:
    # The CA certificate is a fine certificate, but not for the TSA key.
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(hsm.ca_file.read_bytes())
    stderr = serve_fails(
        tmp_path,
        {
            "pkcs11": hsm.pkcs11,
            "certificates": dict(hsm.certificates, chain=str(chain_file)),
            "ledger": {"path": str(tmp_path / "l.sqlite")},
        },
    )
    assert "does not match the signing key" in stderr


def test_refuses_to_start_with_a_wrong_pin(tmp_path, hsm) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("000000\n")
    pin_file.chmod(0o600)  # private, as it must be: only the PIN itself is wrong
    stderr = serve_fails(
        tmp_path,
        {
            "pkcs11": dict(hsm.pkcs11, pin_file=str(pin_file)),
            "certificates": hsm.certificates,
        },
    )
    assert "refused the PIN" in stderr and "000000" not in stderr


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"server": {"prot": 1}}, "unknown key(s) in [server]: prot"),
        ({"sever": {}}, "unknown section(s): sever"),
        ({"server": {"port": "80"}}, "[server] port must be an integer"),
        ({"server": {"port": 70000}}, "[server] port must be 1-65535"),
        ({"tsa": {"accepted_hashes": ["md5"]}}, "unknown hash 'md5'"),
        ({"tsa": {"policies": ["not-an-oid"]}}, "is not a dotted OID"),
        ({"clock": {"servers": []}}, "[clock]"),
    ],
)
def test_broken_config_stops_the_server_with_a_clear_message(tmp_path, sections, message) -> None:
    assert message in serve_fails(tmp_path, sections)


def test_unparseable_toml_is_reported(tmp_path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\nport = 1\n")
    result = subprocess.run(
        [TSA_BIN, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "not valid TOML" in result.stderr and "Traceback" not in result.stderr


def test_a_second_server_on_the_same_ledger_is_refused(make_server) -> None:
    first = make_server().start()
    assert granted_now(first)
    second = subprocess.run(
        [TSA_BIN, "serve", "--config", str(first.config_path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=first.workdir,
    )
    assert second.returncode == 1 and "in use by another process" in second.stderr
    assert "Traceback" not in second.stderr
    assert granted_now(first)  # the running server keeps its sequence
    assert first.get("/readyz")[0] == 200


def test_command_line_overrides_are_validated(make_server) -> None:
    server = make_server()
    result = subprocess.run(
        [TSA_BIN, "serve", "--config", str(server.config_path), "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
    )
    assert result.returncode == 1 and "[server] port must be 1-65535" in result.stderr


def test_unopenable_ledger_is_one_clear_line(tmp_path, hsm) -> None:
    stderr = serve_fails(
        tmp_path,
        {
            "pkcs11": hsm.pkcs11,
            "certificates": hsm.certificates,
            "ledger": {"path": str(tmp_path / "no" / "such" / "dir" / "ledger.sqlite")},
        },
    )
    assert "ledger" in stderr


def test_token_without_tsa_name_when_configured(make_server) -> None:
    server = make_server(tsa={"include_tsa_name": False}).start()
    reply = parse_response(server.post_query(make_request())[2])
    tst = reply["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert isinstance(tst["tsa"], core.Void)
