"""The `tsa` command line: key ceremony commands on a fresh SoftHSM token, with the real
openssl checking what they write; every command is documented in the README."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest

from tests.support.tsa import TSA_BIN, make_hsm, write_config
from tsa_server.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def fresh(tmp_path, softhsm_conf):
    hsm = make_hsm(tmp_path / "hsm", softhsm_conf)
    config = write_config(
        tmp_path / "tsa.toml", {"pkcs11": hsm.pkcs11, "certificates": hsm.certificates}
    )
    return hsm, config


def tsa(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [TSA_BIN, *args[:2], "--config", str(config), *args[2:]]
        if args[0] == "keys"
        else [TSA_BIN, args[0], "--config", str(config), *args[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,  # the defaults' relative paths (var/...) land beside the config
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_init_is_idempotent(fresh) -> None:
    hsm, config = fresh
    chain = hsm.chain_file.read_bytes()
    out = tsa(config, "init").stdout
    assert "already in place" in out and str(hsm.ca_file) in out
    assert hsm.chain_file.read_bytes() == chain


def test_generate_and_csr_verified_by_openssl(fresh, tmp_path) -> None:
    _, config = fresh
    tsa(config, "keys", "generate", "--label", "next-key", "--type", "ec-p384")
    again = tsa(config, "keys", "generate", "--label", "next-key", ok=False)
    assert "already holds a key labelled 'next-key'" in again.stderr
    csr = tmp_path / "tsa.csr"
    tsa(
        config,
        "keys",
        "csr",
        "--common-name",
        "Example TSA",
        "--organization",
        "Example",
        "--out",
        str(csr),
    )
    check = subprocess.run(
        ["openssl", "req", "-in", str(csr), "-verify", "-noout", "-text"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "verify OK" in check.stdout + check.stderr
    assert "CN = Example TSA" in check.stdout
    assert "Time Stamping" in check.stdout


def test_import_chain_checks_it_fits_the_key(fresh, tmp_path) -> None:
    hsm, config = fresh
    good = tmp_path / "good.pem"
    good.write_bytes(hsm.chain_file.read_bytes())
    assert "2 certificate(s)" in tsa(config, "keys", "import-chain", str(good)).stdout
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(hsm.ca_file.read_bytes())
    result = tsa(config, "keys", "import-chain", str(wrong), ok=False)
    assert "does not match the signing key" in result.stderr
    assert hsm.chain_file.read_bytes() == good.read_bytes()  # unchanged
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate")
    assert "certificates" in tsa(config, "keys", "import-chain", str(garbage), ok=False).stderr


def test_dev_ca_does_not_overwrite_without_force(fresh) -> None:
    hsm, config = fresh
    before = hsm.chain_file.read_bytes()
    assert "--force" in tsa(config, "keys", "dev-ca", ok=False).stderr
    tsa(config, "keys", "dev-ca", "--force")
    assert hsm.chain_file.read_bytes() != before
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(hsm.ca_file),
            "-purpose",
            "timestampsign",
            str(hsm.chain_file),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stdout + verify.stderr


def all_commands(group: click.Group, prefix: str = "tsa") -> list[str]:
    names = []
    for name, command in group.commands.items():
        full = f"{prefix} {name}"
        if isinstance(command, click.Group):
            names.extend(all_commands(command, full))
        else:
            names.append(full)
    return names


def test_every_command_is_documented() -> None:
    readme = README.read_text()
    for command in all_commands(cli):
        assert command.split(" ", 1)[1] in readme, f"{command} is not in README.md"
        assert cli.get_command(None, command.split()[1]).help or command
