"""`tsa verify` on tokens from the real server, the [verify] configuration and the trust
roots it names: exit 0 valid, 2 invalid, 1 usage error with one line and no traceback."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import ANY

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from tests.rfc3161.test_verify_ours import Stamped, bare_token, stamp
from tests.rfc3161.tokenfactory import make_pki
from tests.support.queries import make_request
from tests.support.tsa import TSA_BIN, write_config
from tsa_server.cli import main
from tsa_server.config import Config, load_config, parse_config
from tsa_server.errors import ConfigError
from tsa_server.rfc3161.verify_load import load_certificates
from tsa_server.wiring import load_trust_roots


@pytest.fixture(scope="module")
def with_cert(tsa) -> Stamped:
    return stamp(tsa, b"tsa verify with certificate")


@pytest.fixture(scope="module")
def files(tsa, with_cert, tmp_path_factory) -> dict[str, Path]:
    """Tokens (with and without certificate) and their data, as files."""
    root = tmp_path_factory.mktemp("verify-cli")
    no_cert = stamp(tsa, b"tsa verify without certificate", cert_req=False)
    paths = {
        "token": root / "reply.tsr",
        "bare": root / "token.tst",
        "nocert": root / "nocert.tsr",
        "data": root / "doc.txt",
        "nocert-data": root / "nocert.txt",
        "garbage": root / "garbage.tsr",
    }
    paths["token"].write_bytes(with_cert.response)
    paths["bare"].write_bytes(bare_token(with_cert.response))
    paths["nocert"].write_bytes(no_cert.response)
    paths["data"].write_bytes(with_cert.data)
    paths["nocert-data"].write_bytes(no_cert.data)
    paths["garbage"].write_bytes(b"this is not a token\n")
    return paths


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(*args: str, stdin: bytes | None = None) -> Ran:
    """`tsa verify ARGS` in this process, through the real entry point (tsa_server.cli.main,
    which applies the exit-code convention), with stdin, stdout and stderr captured."""
    with CliRunner().isolation(input=stdin) as (out, err, _):
        code = main(["verify", *args])
        return Ran(code, out.getvalue().decode(), err.getvalue().decode())


def test_valid_token_with_data(files, hsm):
    result = run(str(files["token"]), "--data", str(files["data"]), "--ca", str(hsm.ca_file))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Verification: VALID"
    assert "  PASS signature: " in result.stdout
    assert "  PASS message_imprint: the SHA-256 imprint matches the stream" in result.stdout
    assert "  SKIP nonce: " in result.stdout
    for label in (
        "serial number:",
        "genTime (UTC):",
        "policy:",
        "TSA name:",
        "accuracy:",
        "imprint:",
        "signer:",
        "signer valid:",
    ):
        assert any(line.strip().startswith(label) for line in lines), label


def test_digest_nonce_and_policy(files, with_cert, hsm):
    stamped = with_cert
    digest = hashlib.sha256(stamped.data).hexdigest()
    ok = run(
        str(files["bare"]),
        "--digest",
        digest,
        "--digest-algorithm",
        "sha256",
        "--nonce",
        str(stamped.nonce),
        "--ca",
        str(hsm.ca_file),
    )
    assert ok.exit_code == 0, ok.output
    wrong_nonce = run(
        str(files["token"]),
        "--digest",
        digest,
        "--nonce",
        hex(stamped.nonce + 1),
        "--ca",
        str(hsm.ca_file),
    )
    assert wrong_nonce.exit_code == 2
    assert wrong_nonce.stdout.startswith("Verification: INVALID (1 failed: nonce)")
    wrong_policy = run(
        str(files["token"]), "--digest", digest, "--policy", "1.2.3.4", "--ca", str(hsm.ca_file)
    )
    assert wrong_policy.exit_code == 2 and "  FAIL policy: " in wrong_policy.stdout


def test_other_data_is_invalid(files, hsm, tmp_path):
    other = tmp_path / "other.txt"
    other.write_bytes(b"not the stamped document")
    result = run(str(files["token"]), "--data", str(other), "--ca", str(hsm.ca_file))
    assert result.exit_code == 2
    expected = "  FAIL message_imprint: the SHA-256 imprint does not match the stream ("
    assert expected in result.stdout
    assert result.stderr == ""


def test_certificate_less_token_needs_tsa_cert(files, hsm):
    args = [str(files["nocert"]), "--data", str(files["nocert-data"]), "--ca", str(hsm.ca_file)]
    missing = run(*args)
    assert missing.exit_code == 2
    assert "  FAIL signer_certificate: no embedded or supplied certificate" in missing.stdout
    supplied = run(*args, "--tsa-cert", str(hsm.chain_file))
    assert supplied.exit_code == 0, supplied.output


def test_json_output(files, hsm):
    result = run(
        str(files["token"]), "--data", str(files["data"]), "--ca", str(hsm.ca_file), "--json"
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert all(c["passed"] for c in report["checks"])
    assert re.fullmatch(r"0x(?:[0-9A-F]{2})+", report["fields"]["serial_number"])
    assert report["fields"]["gen_time_utc"].endswith("Z")


def test_token_from_stdin(files, hsm):
    result = run(
        "-",
        "--data",
        str(files["data"]),
        "--ca",
        str(hsm.ca_file),
        stdin=files["token"].read_bytes(),
    )
    assert result.exit_code == 0, result.output


def test_roots_and_time_zone_from_config(files, hsm, tmp_path):
    config = write_config(
        tmp_path / "tsa.toml",
        {
            "certificates": {"ca": str(hsm.ca_file)},
            "verify": {"trust_roots": str(tmp_path / "no-such-dir"), "time_zone": "Asia/Tokyo"},
        },
    )
    result = run(str(files["token"]), "--data", str(files["data"]), "--config", str(config))
    assert result.exit_code == 0, result.output
    local = [line for line in result.stdout.splitlines() if "genTime (Asia/Tokyo):" in line]
    assert len(local) == 1 and local[0].endswith("+09:00")

    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "other.pem").write_bytes(make_pki("ec", 93).root.public_bytes(Encoding.PEM))
    config = write_config(
        tmp_path / "other.toml",
        {
            "certificates": {"ca": str(hsm.ca_file)},
            "verify": {"trust_roots": str(trust)},
        },
    )
    result = run(str(files["token"]), "--data", str(files["data"]), "--config", str(config))
    assert result.exit_code == 2 and "  FAIL certificate_chain: " in result.stdout


def test_works_without_a_config_file_when_ca_is_given(files, hsm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not Path("conf/tsa.toml").exists()
    result = run(str(files["token"]), "--data", str(files["data"]), "--ca", str(hsm.ca_file))
    assert result.exit_code == 0, result.output
    result = run(str(files["token"]), "--data", str(files["data"]))
    assert result.exit_code == 1
    assert result.stderr.startswith("tsa: cannot read conf/tsa.toml")
    assert "--ca" in result.stderr


def usage_cases(files: dict[str, Path], ca: str, tmp: Path) -> dict[str, list[str]]:
    token, data = str(files["token"]), str(files["data"])
    return {
        "garbage-token": [str(files["garbage"]), "--data", data, "--ca", ca],
        "missing-token": [str(tmp / "nope.tsr"), "--data", data, "--ca", ca],
        "token-is-directory": [str(tmp), "--data", data, "--ca", ca],
        "missing-data": [token, "--data", str(tmp / "nope.txt"), "--ca", ca],
        "data-and-digest": [token, "--data", data, "--digest", "00", "--ca", ca],
        "bad-hex": [token, "--digest", "xyz", "--ca", ca],
        "algorithm-without-digest": [
            token,
            "--data",
            data,
            "--digest-algorithm",
            "sha256",
            "--ca",
            ca,
        ],
        "bad-nonce": [token, "--data", data, "--nonce", "many", "--ca", ca],
        "bad-policy": [token, "--data", data, "--policy", "policy", "--ca", ca],
        "ca-not-certificates": [token, "--data", data, "--ca", data],
        "missing-ca": [token, "--data", data, "--ca", str(tmp / "nope.pem")],
        "tsa-cert-garbage": [
            token,
            "--data",
            data,
            "--ca",
            ca,
            "--tsa-cert",
            str(files["garbage"]),
        ],
        "bad-config": [token, "--data", data, "--config", data],
        "unknown-option": [token, "--bogus"],
        "no-token-argument": ["--data", data],
    }


USAGE_NAMES = [
    "garbage-token",
    "missing-token",
    "token-is-directory",
    "missing-data",
    "data-and-digest",
    "bad-hex",
    "algorithm-without-digest",
    "bad-nonce",
    "bad-policy",
    "ca-not-certificates",
    "missing-ca",
    "tsa-cert-garbage",
    "bad-config",
    "unknown-option",
    "no-token-argument",
]


@pytest.mark.parametrize("name", USAGE_NAMES)
def test_usage_errors_exit_1_with_one_message(files, hsm, tmp_path, name):
    args = usage_cases(files, str(hsm.ca_file), tmp_path)[name]
    result = run(*args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("tsa: ") and len(result.stderr.splitlines()) == 1


def test_installed_command_exit_codes(files, hsm):
    """The real `tsa` entry point: 0, 2 and 1, and a usage error is one line."""
    base = [TSA_BIN, "verify", "--ca", str(hsm.ca_file)]

    def tsa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)

    assert tsa(str(files["token"]), "--data", str(files["data"])).returncode == 0
    assert tsa(str(files["token"]), "--digest", "00" * 32).returncode == 2
    garbage = tsa(str(files["garbage"]), "--data", str(files["data"]))
    assert garbage.returncode == 1 and garbage.stdout == ""
    assert garbage.stderr.startswith("tsa: ") and len(garbage.stderr.splitlines()) == 1
    assert tsa("--nope").returncode == 1


def test_a_damaged_token_fails_the_check_and_a_request_is_a_usage_error(files, hsm, tmp_path):
    """A truncated token is a token that does not verify (2); a request file given as
    the token is the wrong input (1) and the message says what to give instead; neither
    shows the decoder's parse path."""
    whole = files["token"].read_bytes()
    cut = tmp_path / "cut.tsr"
    cut.write_bytes(whole[: len(whole) // 2])
    truncated = run(str(cut), "--ca", str(hsm.ca_file))
    assert truncated.exit_code == 2, truncated.output
    assert "truncated" in truncated.stderr and len(truncated.stderr.splitlines()) == 1
    request = tmp_path / "req.tsq"
    request.write_bytes(make_request(b"a request, not a token"))
    wrong = run(str(request), "--ca", str(hsm.ca_file))
    assert wrong.exit_code == 1 and wrong.stdout == ""
    assert "time-stamp request" in wrong.stderr and "reply (.tsr)" in wrong.stderr
    for result in (truncated, wrong):
        assert "asn1crypto" not in result.stderr and "Traceback" not in result.stderr
        assert "while parsing" not in result.stderr


def test_with_json_an_error_is_json(files, hsm, tmp_path):
    for args, status in (
        ([str(tmp_path / "nope.tsr")], 1),
        ([str(files["garbage"])], 1),
        ([str(files["token"]), "--bogus"], 1),
    ):
        result = run(*args, "--ca", str(hsm.ca_file), "--json")
        assert result.exit_code == status, result.output
        assert json.loads(result.stdout) == {"error": ANY, "exit_status": status}
        assert result.stderr == ""


# --- [verify] configuration and trust roots -----------------------------------------------


def test_verify_section_defaults_and_constraints():
    assert Config().verify.trust_roots == "var/certs/trust"
    assert Config().verify.time_zone == "UTC"
    assert load_config(Path(__file__).parents[2] / "conf" / "tsa.toml").verify == Config().verify
    assert parse_config({"verify": {"time_zone": "America/New_York"}}).verify.time_zone
    for bad in (
        {"time_zone": "Mars/Olympus"},
        {"time_zone": "America"},
        {"max_data_bytes": 0},
        {"max_token_bytes": 100},
        {"trust_roots": ""},
        {"unknown": 1},
        {"time_zone": 5},
    ):
        with pytest.raises(ConfigError, match=r"\[verify\]"):
            parse_config({"verify": bad})


def _config(tmp_path: Path, trust: Path, ca: Path) -> Config:
    return parse_config({"verify": {"trust_roots": str(trust)}, "certificates": {"ca": str(ca)}})


def test_trust_roots_directory_or_the_ca(tmp_path, hsm):
    ca = Path(hsm.ca_file)
    ours = load_certificates(ca.read_bytes())
    trust = tmp_path / "trust"
    # Missing directory, then an empty one: the CA file.
    assert [c.dump() for c in load_trust_roots(_config(tmp_path, trust, ca))] == [
        c.dump() for c in ours
    ]
    trust.mkdir()
    (trust / ".hidden").write_bytes(b"ignored")
    assert len(load_trust_roots(_config(tmp_path, trust, ca))) == 1
    # A PEM bundle of two and a DER file: those three, and not the CA.
    pkis = [make_pki("ec", 94), make_pki("ec", 95)]
    (trust / "bundle.pem").write_bytes(b"".join(p.root.public_bytes(Encoding.PEM) for p in pkis))
    (trust / "one.der").write_bytes(make_pki("ec", 96).root.public_bytes(Encoding.DER))
    roots = load_trust_roots(_config(tmp_path, trust, ca))
    assert len(roots) == 3 and ours[0].dump() not in {r.dump() for r in roots}
    # An undecodable file stops everything, naming it.
    (trust / "notes.txt").write_text("not a certificate")
    with pytest.raises(ConfigError, match="notes.txt"):
        load_trust_roots(_config(tmp_path, trust, ca))
    # Not a directory; no CA either: no roots.
    with pytest.raises(ConfigError, match="not a directory"):
        load_trust_roots(_config(tmp_path, ca, ca))
    assert load_trust_roots(_config(tmp_path, tmp_path / "none", tmp_path / "none.pem")) == []
