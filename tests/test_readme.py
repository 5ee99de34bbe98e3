"""A newcomer's walk-through: the README's own commands, extracted from README.md and run
literally (only the server's address, the CA file and the virtualenv's path are
substituted) against a real server on a port that is not the default, in a scratch
directory. The README cannot drift from the code without this failing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
        .replace("var/certs/ca.pem", str(ca))
        .replace(".venv/bin/", BIN)
    )


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def walk(tsa: TsaServer, hsm, tmp_path: Path) -> tuple[TsaServer, Path, Path]:
    return tsa, Path(hsm.ca_file), tmp_path


def test_get_and_verify_a_timestamp_as_written(walk) -> None:
    server, ca, where = walk
    (first, *_) = blocks("Get and verify a timestamp")
    assert first.startswith('cd "$(mktemp -d)"')  # the example leaves no stray files
    script = localise(first.replace('cd "$(mktemp -d)"; ', "", 1), server, ca)  # here: tmp
    done = sh(script, where)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification: OK" in done.stdout
    shown = re.search(r"Serial number: (0x[0-9A-F]+)", done.stdout)
    assert shown, done.stdout

    # offline, as "Verifying a token" writes it: the same serial, exit 0
    (offline, *_) = commands("Verifying a token", ".venv/bin/tsa verify reply.tsr")
    verified = sh(localise(offline, server, ca), where)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"serial number:    {shown[1]}" in verified.stdout
    # the same command on a file that is not the document: a failed check, exit 2
    (where / "doc.txt").write_text("someone else's document\n")
    assert sh(localise(offline, server, ca), where).returncode == 2


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
    assert "`scripts/run --port 3400`" in text
