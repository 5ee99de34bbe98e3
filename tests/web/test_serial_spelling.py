"""One spelling of a serial number (issue 20 item 1): what `openssl ts -reply -text`
prints is what `tsa verify`, POST /verify, the ledger lookups and /tokens/ show, and
every input place also accepts the bare hex and the decimal spellings."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time

import pytest

from ledger.serials import serial_candidates, serial_text
from tests.rfc3161.test_verify_ours import stamp
from tests.support.tsa import TSA_BIN, TsaServer

pytestmark = pytest.mark.both_backends


def test_spelling_is_openssls() -> None:
    assert serial_text(0x01000000000000010000000000000001) == "0x01000000000000010000000000000001"
    assert serial_text(0xABC) == "0x0ABC"  # whole bytes, upper case, as BN_bn2hex
    assert serial_text(0) == "0x00"
    for text in ("0x0abc", "0X0ABC", "abc", "2748"):
        assert 0xABC in serial_candidates(text)
    assert serial_candidates("10") == (16, 10)  # digits alone: hex first, then decimal
    assert serial_candidates("0x10") == (16,)
    for bad in ("", "0x", "-1", "f_f", "1" * 50, "f" * 41):
        with pytest.raises(ValueError, match="0x-prefixed hex"):
            serial_candidates(bad)


def openssl_serial(reply: bytes, tmp_path) -> str:
    path = tmp_path / "reply.tsr"
    path.write_bytes(reply)
    text = subprocess.run(
        ["openssl", "ts", "-reply", "-in", str(path), "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = [x for x in text.splitlines() if x.startswith("Serial number:")]
    return line.split(":", 1)[1].strip()


def wait_for_checkpoint(tsa: TsaServer, size: int) -> None:
    deadline = time.monotonic() + 15
    while int(tsa.get("/ledger/tokens/checkpoint")[2].decode().split("\n")[1]) < size:
        assert time.monotonic() < deadline, "no checkpoint covers the token"
        time.sleep(0.1)


def test_serial_round_trips_through_every_surface(tsa: TsaServer, hsm, tmp_path) -> None:
    stamped = stamp(tsa, b"serial spelling")
    shown = openssl_serial(stamped.response, tmp_path)
    number = int(shown, 16)
    assert shown == serial_text(number)

    token, data = tmp_path / "reply.tsr", tmp_path / "doc.txt"
    data.write_bytes(stamped.data)
    cli = subprocess.run(
        [TSA_BIN, "verify", str(token), "--data", str(data), "--ca", str(hsm.ca_file), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    fields = json.loads(cli.stdout)["fields"]
    assert fields["serial_number"] == shown
    assert fields["nonce"] == serial_text(stamped.nonce)
    human = subprocess.run(
        [TSA_BIN, "verify", str(token), "--data", str(data), "--ca", str(hsm.ca_file)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert f"serial number:    {shown}" in human

    status, _, body = tsa.request(
        "POST",
        "/verify",
        json.dumps(
            {
                "token": base64.b64encode(stamped.response).decode(),
                "digest": hashlib.sha256(stamped.data).hexdigest(),
            }
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200, body
    report = json.loads(body)
    assert report["fields"]["serial_number"] == shown
    assert isinstance(report["fields"]["signer"]["serial_number"], str)

    wait_for_checkpoint(tsa, 1)
    for spelling in (shown, shown.lower(), format(number, "x"), str(number)):
        status, _, body = tsa.get(f"/ledger/tokens/lookup/serial/{spelling}")
        assert status == 200, (spelling, body)
        (match,) = json.loads(body)["matches"]
        assert match["serial"] == shown, spelling
        status, _, again = tsa.get(f"/tokens/{spelling}")
        assert status == 200 and again == stamped.response, spelling
    status, _, body = tsa.get("/ledger/tokens/lookup/serial/f_f")
    assert status == 400 and b"0x-prefixed hex" in body
