"""HTTPS (issue 17 item 1) on the real server: TLS 1.2 and 1.3 only with modern suites
(checked with `openssl s_client`), time-stamps over https with openssl ts through curl and
with rfc3161-client, the certificate reloaded on SIGHUP while a connection stays open, the
plain listener kept on loopback, and the key file's mode checked."""

from __future__ import annotations

import http.client
import os
import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    decode_timestamp_response,
)

from tests.interop.helpers import tool
from tests.support.tls import TlsFiles, issue_server_certificate, make_ca
from tests.support.tsa import TSA_BIN, free_port

QUERY = {"Content-Type": "application/timestamp-query"}


@pytest.fixture
def tls_server(tmp_path: Path, make_server):
    ca = make_ca(tmp_path / "tls")
    files = issue_server_certificate(tmp_path / "tls", ca)
    port = free_port()
    server = make_server(server=files.server_config(port)).start()
    return server, files, port, ca


def s_client(port: int, *args: str, ca: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *args]
    if ca is not None:
        command += ["-CAfile", str(ca), "-verify_return_error"]
    return subprocess.run(
        command, input="", capture_output=True, text=True, timeout=30, check=False
    )


def served_serial(port: int) -> int:
    """The serial of the certificate a new handshake on `port` gets."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    out = subprocess.run(
        [tool("openssl"), "x509", "-noout", "-serial"],
        input=pem,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip().split("=", 1)[1], 16)


def test_tls_versions_and_ciphers(tls_server):
    _, files, port, _ = tls_server
    for version in ("-tls1_2", "-tls1_3"):
        done = s_client(port, version, ca=files.ca)
        assert done.returncode == 0, done.stderr
        assert "Verification: OK" in done.stderr
        assert re.search(r"Protocol version: TLSv1\.[23]", done.stderr), done.stderr
    for version in ("-tls1", "-tls1_1"):
        done = s_client(port, version, "-cipher", "DEFAULT@SECLEVEL=0")
        assert done.returncode != 0, f"{version} accepted:\n{done.stderr}"
    # Without forward secrecy or without an AEAD: refused on TLS 1.2.
    for cipher in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"):
        done = s_client(port, "-tls1_2", "-cipher", cipher)
        assert done.returncode != 0, f"{cipher} accepted:\n{done.stderr}"
    done = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", ca=files.ca)
    assert done.returncode == 0, done.stderr


def test_openssl_ts_through_curl_over_https(tls_server, tmp_path: Path, hsm):
    server, files, port, _ = tls_server
    data = tmp_path / "doc.txt"
    data.write_text("a document time-stamped over https\n")
    query, reply = tmp_path / "req.tsq", tmp_path / "reply.tsr"
    openssl = tool("openssl")
    subprocess.run(
        [openssl, "ts", "-query", "-data", data, "-sha256", "-cert", "-out", query], check=True
    )
    subprocess.run(
        [
            tool("curl"),
            "-sS",
            "--fail",
            "--cacert",
            files.ca,
            "-H",
            "Content-Type: application/timestamp-query",
            "--data-binary",
            f"@{query}",
            "-o",
            reply,
            f"https://127.0.0.1:{port}/",
        ],
        check=True,
        timeout=30,
    )
    verified = subprocess.run(
        [openssl, "ts", "-verify", "-in", reply, "-data", data, "-CAfile", hsm.ca_file],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" in verified.stdout, verified.stdout + verified.stderr
    # The plain listener is still there, on loopback.
    status, _, _ = server.get("healthz")
    assert status == 200


def test_rfc3161_client_over_https(tls_server):
    _, files, port, _ = tls_server
    request = (
        TimestampRequestBuilder().data(b"over https").hash_algorithm(HashAlgorithm.SHA256).build()
    )
    context = ssl.create_default_context(cafile=str(files.ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    connection.request("POST", "/tsr", body=request.as_bytes(), headers=QUERY)
    answer = connection.getresponse()
    assert answer.status == 200
    response = decode_timestamp_response(answer.read())
    assert response.status == PKIStatus.GRANTED
    assert response.tst_info.nonce == request.nonce
    assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")


def test_sighup_reloads_the_certificate_without_dropping_connections(tls_server, tmp_path):
    server, files, port, ca = tls_server
    assert served_serial(port) == files.serial
    context = ssl.create_default_context(cafile=str(files.ca))
    kept = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    kept.request("GET", "/healthz")
    assert kept.getresponse().read()

    renewed = issue_server_certificate(tmp_path / "tls", ca, name="renewed")
    os.replace(renewed.certificate, files.certificate)
    os.replace(renewed.key, files.key)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while served_serial(port) != renewed.serial:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    assert "TLS certificate reloaded" in server.log()

    # The connection opened before the reload goes on, on its own session.
    kept.request("GET", "/healthz")
    assert kept.getresponse().status == 200

    # A broken replacement keeps the certificate in service.
    files.key.write_text("not a key\n")
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "not reloaded" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    assert served_serial(port) == renewed.serial
    assert s_client(port, ca=files.ca).returncode == 0


def _serve_refused(server) -> str:
    done = subprocess.run(
        [TSA_BIN, "serve", "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
        check=False,
    )
    assert done.returncode != 0, done.stdout + done.stderr  # refused, nothing served
    return done.stderr


def test_refuses_a_key_others_can_read(make_server, tmp_path: Path):
    files: TlsFiles = issue_server_certificate(tmp_path / "tls", make_ca(tmp_path / "tls"))
    files.key.chmod(0o644)
    server = make_server(server=files.server_config(free_port()))
    refusal = _serve_refused(server)
    assert "tls_key" in refusal and "chmod 600" in refusal


def test_plain_http_stays_on_loopback_with_tls(make_server, tmp_path: Path):
    files = issue_server_certificate(tmp_path / "tls", make_ca(tmp_path / "tls"))
    server = make_server(server={**files.server_config(free_port()), "host": "0.0.0.0"})
    assert "loopback" in _serve_refused(server)
