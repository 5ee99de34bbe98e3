"""`tsa fees ...` and `tsa evidence ...` in subprocesses against a real running server
and its [evidence] database: grant (idempotent), balance, entries, deposit through the
API (hash-only and stored), list, show, forecast, reminders, renew-run; operator errors
are one line and exit status 1; a client command finds the server from the configuration
and names the URL it could not reach."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.tsa import TSA_BIN, TsaServer, free_port, write_config


def run(server: TsaServer, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    group, command, *rest = args
    argv = [TSA_BIN, group, command, "--config", str(server.config_path)]
    return subprocess.run(
        argv + rest,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
    )


def ok(server: TsaServer, *args: str, env: dict | None = None) -> str:
    result = run(server, *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return make_server(
        evidence={"path": str(tmp_path / "evidence.sqlite"), "blobs": str(tmp_path / "blobs")}
    ).start()


def test_fees_and_evidence_commands(server: TsaServer, tmp_path: Path) -> None:
    org = ok(server, "accounts", "create-org", "CLI shop")
    key = ok(server, "accounts", "create-key", "--org", org, "--scope", "deposit,read")
    lot = ok(server, "fees", "grant", "--org", org, "--units", "5", "--key", "order-1")
    assert lot.startswith("lot_")
    again = run(server, "fees", "grant", "--org", org, "--units", "5", "--key", "order-1")
    assert again.stdout.strip() == lot and "already granted" in again.stderr
    clash = run(server, "fees", "grant", "--org", org, "--units", "6", "--key", "order-1")
    assert clash.returncode == 1 and clash.stderr.startswith("tsa: ")
    assert len(clash.stderr.strip().splitlines()) == 1

    document = tmp_path / "contract.pdf"
    document.write_bytes(b"%PDF-1.7 a contract draft")
    form = ["--depositor", "李四", "--work-content", "contract draft", "--statement", "mine"]
    env = {"TSA_API_KEY": key}
    deposited = json.loads(
        ok(
            server,
            "evidence",
            "deposit",
            "--url",
            server.url,
            "--file",
            str(document),
            *form,
            env=env,
        )
    )
    [hash_only] = deposited["items"]
    assert hash_only["mode"] == "HASH_ONLY" and hash_only["file_name"] == "contract.pdf"
    stored = json.loads(
        ok(
            server,
            "evidence",
            "deposit",  # no --url: the configuration's [server] names it
            "--file",
            str(document),
            "--store",
            "--tag",
            "legal",
            *form,
            env=env,
        )
    )
    [kept] = stored["items"]
    assert kept["mode"] == "STORED" and kept["tags"] == ["legal"]
    refused = run(
        server, "evidence", "deposit", "--url", server.url, "--sha256", "00", *form, env=env
    )
    assert refused.returncode == 1 and "422" in refused.stderr
    port = free_port()
    elsewhere = write_config(tmp_path / "elsewhere.toml", {"server": {"port": port}})
    unreachable = subprocess.run(
        [TSA_BIN, "evidence", "deposit", "--config", str(elsewhere), "--sha256", "0" * 64, *form],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **env),
    )
    assert unreachable.returncode == 1 and len(unreachable.stderr.splitlines()) == 1
    assert f"cannot reach the server at http://127.0.0.1:{port}/" in unreachable.stderr
    no_key = run(
        server,
        "evidence",
        "deposit",
        "--url",
        server.url,
        "--sha256",
        "0" * 64,
        *form,
        env={"TSA_API_KEY": ""},
    )
    assert no_key.returncode == 1 and "TSA_API_KEY" in no_key.stderr

    balance = json.loads(ok(server, "fees", "balance", "--org", org, "--json"))
    assert balance["balance"] == 3 and balance["lots"][0]["id"] == lot
    entries = json.loads(ok(server, "fees", "entries", "--org", org, "--json"))
    assert [e["kind"] for e in entries] == ["purchase", "reserve", "consume", "reserve", "consume"]
    assert "purchase" in ok(server, "fees", "entries", "--org", org)

    listing = ok(server, "evidence", "list", "--org", org)
    assert kept["id"] in listing and hash_only["id"] in listing and "ACTIVE" in listing
    shown = json.loads(ok(server, "evidence", "show", "--org", org, kept["id"]))
    assert shown["sha256"] == kept["sha256"] and shown["storage"]["status"] == "ACTIVE"
    other = ok(server, "accounts", "create-org", "Other")
    missing = run(server, "evidence", "show", "--org", other, kept["id"])
    assert missing.returncode == 1 and "no item" in missing.stderr  # never another's item

    forecast = json.loads(ok(server, "evidence", "forecast", "--org", org))
    assert forecast["balance"] == 3 and len(forecast["months"]) == 12
    reminders = json.loads(ok(server, "evidence", "reminders", "--org", org))
    assert reminders["due"] == [] and reminders["notices"][0]["kind"] == "item.certified"

    report = json.loads(ok(server, "evidence", "renew-run"))
    assert report["renewed"] == report["expired"] == 0 and report["errors"] == []
    expiry = shown["storage"]["expires_at"]
    report = json.loads(ok(server, "evidence", "renew-run", "--at", expiry))
    assert report["lapsed"] == 1 and report["expired"] == 1  # the lot lapsed first
    bad = run(server, "evidence", "renew-run", "--at", "soon")
    assert bad.returncode == 1
