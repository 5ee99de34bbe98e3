"""`tsa accounts`: the operator bootstraps organisations and keys; the secret is printed
once on stdout and never again; errors are one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.tsa import write_config
from tsa_server.accounts.errors import ApiKeyRevoked
from tsa_server.accounts.service import Accounts
from tsa_server.accounts.store import SqlAccountStore
from tsa_server.cli import main
from tsa_server.config import Config, ConfigError, load_config, parse_config

CONF = Path(__file__).resolve().parents[2] / "conf" / "tsa.toml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "tsa.toml",
        {"evidence": {"path": str(tmp_path / "ev.sqlite"), "blobs": str(tmp_path / "blobs")}},
    )


def run(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["accounts", args[0], "--config", str(config), *args[1:]])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_bootstrap_an_organisation_and_its_first_key(capsys, config: Path, tmp_path) -> None:
    code, out, _ = run(capsys, config, "create-org", "Acme Design 设计")
    assert code == 0
    org_id = out.strip()
    code, out, err = run(
        capsys,
        config,
        "create-key",
        "--org",
        org_id,
        "--role",
        "owner",
        "--scope",
        "admin,read",
        "--scope",
        "deposit",
        "--name",
        "bootstrap",
    )
    assert code == 0
    token = out.strip()
    assert out.count("\n") == 1 and token.startswith("tsa_")  # stdout: the token only
    assert "shown only once" in err and token not in err
    key_id = token.split("_")[1]
    store = SqlAccountStore(tmp_path / "ev.sqlite")
    try:
        principal = Accounts(store).authenticate(token)
        assert principal.org_id == org_id and {str(s) for s in principal.scopes} == {
            "admin",
            "read",
            "deposit",
        }
    finally:
        store.close()

    code, out, _ = run(capsys, config, "add-member", "--org", org_id, "--role", "auditor", "Eve")
    assert code == 0 and out.startswith("mem_")
    code, listing, _ = run(capsys, config, "list")
    assert code == 0 and org_id in listing and key_id in listing and "Eve" in listing
    code, as_json, _ = run(capsys, config, "list", "--org", org_id, "--json")
    report = json.loads(as_json)
    assert report[0]["keys"][0]["id"] == key_id and report[0]["keys"][0]["state"] == "active"
    secret = token.rsplit("_", 1)[1]
    assert secret not in listing and secret not in as_json

    code, out, _ = run(capsys, config, "revoke-key", key_id)
    assert code == 0 and "revoked" in out
    store = SqlAccountStore(tmp_path / "ev.sqlite")
    try:
        with pytest.raises(ApiKeyRevoked):
            Accounts(store).authenticate(token)
    finally:
        store.close()
    code, listing, _ = run(capsys, config, "list")
    assert "revoked" in listing


@pytest.mark.parametrize(
    "args, message",
    [
        (("create-key", "--org", "org_missing", "--scope", "read"), "no organisation"),
        (("revoke-key", "0123456789abcdef"), "no API key"),
        (("revoke-key", "../../etc/passwd"), "no API key"),
        (("create-org", "   "), "must not be empty"),
        (("list", "--org", "org_missing"), "no organisation"),
    ],
)
def test_errors_are_one_line(capsys, config: Path, args, message) -> None:
    code, out, err = run(capsys, config, *args)
    assert code == 1 and out == ""  # an input error (README: exit codes)
    assert err.startswith("tsa: ") and message in err and err.count("\n") == 1


def test_a_role_cannot_hold_a_scope_above_it(capsys, config: Path) -> None:
    _, out, _ = run(capsys, config, "create-org", "Acme")
    org_id = out.strip()
    for role, scope in (("auditor", "deposit"), ("member", "admin"), ("member", "root")):
        code, out, err = run(
            capsys, config, "create-key", "--org", org_id, "--role", role, "--scope", scope
        )
        assert code == 1 and out == "" and err.startswith("tsa: "), err


def test_evidence_configuration() -> None:
    assert load_config(CONF).evidence == Config().evidence
    assert Config().evidence.path == "var/evidence.sqlite"
    for bad in ({"max_upload_bytes": 0}, {"max_upload_bytes": "1"}, {"path": ""}, {"x": 1}):
        with pytest.raises(ConfigError):
            parse_config({"evidence": bad})
