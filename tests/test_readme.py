"""A newcomer's walk-through: the README's own commands, extracted from README.md and run
literally (only the server's address, the CA file and the virtualenv's path are
substituted) against a real server on a port that is not the default, in a scratch
directory. The README cannot drift from the code without this failing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.accounts.test_http import tsa_accounts
from tests.support.names_server import start_names_server
from tests.support.tsa import TsaServer

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = str(Path(sys.executable).parent) + "/"


def blocks(section: str) -> list[str]:
    """The ```sh blocks of the README section headed `## <section>`."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start : end if end > 0 else None], re.S)


def commands(section: str, *starts: str) -> list[str]:
    """The README's command lines in `section` that begin with one of `starts`, with their
    continuation lines joined and comments dropped."""
    found = []
    for block in blocks(section):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("   #", 1)[0].strip()
            if line.startswith(starts):
                found.append(line)
    assert found, f"no command starting with {starts} in README section {section!r}"
    return found


def localise(command: str, server: TsaServer, ca: Path) -> str:
    assert server.port != 3161  # the walk-through must prove nothing depends on the default
    return (
        command.replace("http://127.0.0.1:3161", server.url.rstrip("/"))
        .replace("$OLDPWD/var/certs/ca.pem", str(ca))
        .replace("$OLDPWD/.venv/bin", BIN.rstrip("/"))
        .replace("var/certs/ca.pem", str(ca))
        .replace(".venv/bin/", BIN)
    )


def sh(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """bash -euo pipefail, as the first example leaves the reader's shell: the
    virtualenv's commands on PATH (`env` adds $CA, $KEY...)."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PATH=BIN + ":" + os.environ["PATH"], **env),
    )


def section_block(section: str, containing: str) -> str:
    """The one ```sh block of `section` that contains `containing`."""
    (found,) = [block for block in blocks(section) if containing in block]
    return found


@pytest.fixture
def walk(tsa: TsaServer, hsm, tmp_path: Path) -> tuple[TsaServer, Path, Path]:
    return tsa, Path(hsm.ca_file), tmp_path


def test_get_and_verify_a_timestamp_as_written(walk) -> None:
    server, ca, where = walk
    (first, *_) = blocks("Get and verify a timestamp")
    assert first.startswith('cd "$(mktemp -d)"')  # the example leaves no stray files
    script = localise(first.replace('cd "$(mktemp -d)"; ', "", 1), server, ca)  # here: tmp
    done = sh(script, where)
    assert done.returncode == 0, done.stdout + done.stderr + server.log_path.read_text()[-3000:]
    assert "Verification: OK" in done.stdout
    shown = re.search(r"Serial number: (0x[0-9A-F]+)", done.stdout)
    assert shown, done.stdout

    # offline, as "Verifying a token" writes it: the same serial, exit 0
    (offline, *_) = commands("Verifying a token", "tsa verify reply.tsr")
    verified = sh(localise(offline, server, ca), where, CA=str(ca))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"serial number:    {shown[1]}" in verified.stdout

    # "The published ledger": the catalog, both keys, the token's proof, verify-token
    index = ledger_index(server, shown[1])
    published = section_block("The published ledger", "verify-token")
    done = sh(localise(published, server, ca).replace("<index>", str(index)), where)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"OK: entry {index} of "), done.stdout
    catalog = json.loads((where / "catalog.json").read_text())
    keys = {log["name"]: log["vkey"] for log in catalog["logs"]}
    assert (where / "ops-vkey").read_text().strip() == keys["ops"]
    assert (where / "vkey").read_text().strip() == keys["tokens"]

    # the same command on a file that is not the document: a failed check, exit 2
    (where / "doc.txt").write_text("someone else's document\n")
    assert sh(localise(offline, server, ca), where, CA=str(ca)).returncode == 2


def ledger_index(server: TsaServer, serial: str) -> int:
    """The token's index, once a signed checkpoint covers it (its tlog-proof needs one)."""
    status, _, body = server.get(f"/ledger/tokens/lookup/serial/{serial}")
    assert status == 200, body
    index = int(json.loads(body)["matches"][0]["index"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, _, checkpoint = server.get("/ledger/tokens/checkpoint")
        if int(checkpoint.decode().split("\n")[1]) > index:
            return index
        time.sleep(0.05)
    raise AssertionError("no checkpoint covers the token")


def test_java_clients_as_written(walk) -> None:
    """jarsigner trusts the development CA as the README says: signed over http, then
    `jarsigner -verify -strict` says `jar verified.` (exit 0)."""
    if shutil.which("jarsigner") is None or shutil.which("keytool") is None:
        pytest.skip("no JDK (scripts/bootstrap --test installs one)")
    server, ca, where = walk
    with zipfile.ZipFile(where / "app.jar", "w") as jar:  # what the reader signs
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        jar.writestr("hello.txt", "hello\n")
    block = section_block("Get and verify a timestamp", "jarsigner")
    setup = (  # the reader's own signing key, named as the README names it
        "keytool -genkeypair -noprompt -keystore signer.p12 -storepass changeit "
        "-alias mykey -keyalg EC -dname CN=readme -validity 2\n"
    )
    done = sh(setup + localise(block, server, ca), where, CA=str(ca))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "jar signed." in done.stdout and "TSA certificate chain is invalid" not in done.stdout
    assert "jar verified." in done.stdout.splitlines(), done.stdout


def test_a_shop_walk_as_written(make_server, hsm, tmp_path: Path) -> None:
    """Deposit, list items, download the token, the certificate and the kit (and check
    the kit), apply for a trade name and prove its first-claim date: the README's
    commands for shops, against a server with the evidence layer and the registry."""
    server, orgs = start_names_server(make_server, tmp_path, ("Acme Design", "Registry"))
    org = orgs["Acme Design"]
    key = tsa_accounts(
        server, "create-key", "--org", org, "--role", "owner", "--scope",
        "admin,read,deposit,timestamp",
    )  # fmt: skip
    granted = subprocess.run(
        [BIN + "tsa", "fees", "grant", "--config", str(server.config_path), "--org", org]
        + ["--units", "20", "--key", "readme"],
        capture_output=True,
        text=True,
    )
    assert granted.returncode == 0, granted.stderr
    where = tmp_path / "walk"
    where.mkdir()
    for name in ("photo.jpg", "a.psd", "b.psd"):
        (where / name).write_bytes(f"the shop's {name}\n".encode())
    env = {"KEY": key, "CA": str(hsm.ca_file)}

    block = localise(section_block("Evidence deposits and credits", "kit.zip"), server, hsm.ca_file)
    cut = block.rindex("\n", 0, block.index("/api/v1/items?")) + 1  # deposits, then reads
    done = sh(block[:cut], where, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    first, _ = json.JSONDecoder().raw_decode(done.stdout)  # curl ends no line: JSON, JSON
    item = first["items"][0]["id"]
    done = sh(block[cut:].replace("<id>", item), where, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    listing, end = json.JSONDecoder().raw_decode(done.stdout)
    assert (listing["total"], listing["limit"], listing["offset"]) == (3, 20, 0)
    assert [i["id"] for i in listing["items"]][-1] == item  # newest first
    rest = done.stdout[end:].splitlines()
    assert "Verification: OK" in rest
    assert (where / "certificate.pdf").read_bytes().startswith(b"%PDF-")
    assert "ledger.vkey: OK" in rest and not any("FAILED" in line for line in rest), rest

    # trade names: apply, then prove the first claim from the history
    (apply_block,) = blocks("Trade names (字号 / handles)")[:1]
    done = sh(localise(apply_block, server, hsm.ca_file), where, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    proof = section_block("Trade names (字号 / handles)", "claim.tst")
    done = sh(localise(proof, server, hsm.ca_file), where, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Verification: VALID"), done.stdout
    claim = json.loads((where / "claim.json").read_text())
    assert claim["kind"] == "applied" and claim["handle"] == "星辰"


def test_auditing_the_ledger_as_written(walk) -> None:
    server, ca, where = walk
    (by_server,) = commands("Auditing the ledger", ".venv/bin/tsa-ledger audit http")
    done = sh(localise(by_server, server, ca), where)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^OK: token log, \d+ entries, \d+ checkpoints", done.stdout, re.M)


def test_the_readme_states_the_conventions() -> None:
    text = README.read_text()
    assert text.splitlines()[4:7] == [
        "```sh",
        "scripts/run     # install what is missing, create the dev token/keys/CA on first "
        "run, serve on 127.0.0.1:3161",
        "scripts/test    # install what is missing (incl. test clients), lint, run the whole "
        "test suite",
    ]
    assert "exits **0** on success, **1** on a usage or input" in text
    top = text[: text.index("## Get and verify a timestamp")]
    assert "### What is where" in top and "docs/operations.md" in top
    assert "about 25 minutes" in top
    # Every apt package scripts/bootstrap installs is named where the README says what
    # the two commands install.
    bootstrap = (README.parent / "scripts" / "bootstrap").read_text()
    packages = {
        name
        for line in bootstrap.splitlines()
        if line.strip().startswith("apt_packages")
        for name in line.split("(", 1)[1].rstrip(")").split()
    }
    assert packages and not [p for p in packages if p not in top], packages
    assert "`scripts/run --port 3400`" in text
