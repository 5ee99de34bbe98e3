"""The one exit-code convention (ledger/cli_run.py), for every command of `tsa` and
`tsa-ledger`: 0 success, 1 usage or input error, 2 a check that failed; an error is one
line on stderr, or a JSON document on stdout with --json. Every command is found by
walking the click groups, so a new command is held to it without a new test; every
command that checks something is tried on real material, passing (0) and failing (2)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ledger import cli as ledger_cli
from ledger.store.sqlite import SqliteReader
from tests.support.queries import make_request
from tests.support.tsa import Hsm, TsaServer
from tsa_server import cli as tsa_cli

ROOT = Path(__file__).resolve().parents[2]


def leaves(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            yield from leaves(command, (*path, name))
    else:
        yield path


def command(group: click.Command, path: tuple[str, ...]) -> click.Command:
    for name in path:
        assert isinstance(group, click.Group)
        group = group.commands[name]
    return group


PROGRAMS: dict[str, tuple[click.Command, Callable[[list[str]], int]]] = {
    "tsa": (tsa_cli.cli, tsa_cli.main),
    "tsa-ledger": (ledger_cli.cli, ledger_cli.main),
}
COMMANDS = [(prog, path) for prog, (group, _) in PROGRAMS.items() for path in leaves(group)]


def run(prog: str, *args: str) -> tuple[int, str, str]:
    with CliRunner().isolation() as (out, err, _):
        code = PROGRAMS[prog][1](list(args))
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_every_command_is_covered() -> None:
    names = {" ".join((prog, *path)) for prog, path in COMMANDS}
    assert {"tsa verify", "tsa audit", "tsa-ledger audit", "tsa evidence deposit"} <= names
    assert len(names) >= 30


@pytest.mark.parametrize(("prog", "path"), COMMANDS, ids=lambda v: " ".join(v) if v else "")
def test_help_is_success_and_a_mistyped_option_is_a_usage_error(prog, path) -> None:
    code, out, err = run(prog, *path, "--help")
    assert code == 0 and "Usage:" in out and err == ""

    code, out, err = run(prog, *path, "--no-such-option")
    assert code == 1, (out, err)
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: No such option") and f"{' '.join((prog, *path))} --help" in err

    takes_json = any("--json" in p.opts for p in command(PROGRAMS[prog][0], path).params)
    if takes_json:  # a script that asked for JSON gets JSON, errors included
        code, out, err = run(prog, *path, "--json", "--no-such-option")
        assert code == 1 and err == ""
        error = json.loads(out)
        assert error["exit_status"] == 1 and "--no-such-option" in error["error"]


def test_a_near_miss_suggests_the_option() -> None:
    code, _, err = run("tsa-ledger", "audit", "--vkye", "x", "source")
    assert code == 1 and "Did you mean '--vkey'?" in err
    code, _, err = run("tsa", "audit", "--vkye", "x", "source")
    assert code == 1 and "Did you mean '--vkey'?" in err  # once exit 2, as a failed audit


def test_an_unknown_command_is_a_usage_error() -> None:
    for prog in PROGRAMS:
        code, out, err = run(prog, "no-such-command")
        assert code == 1 and out == "" and len(err.splitlines()) == 1


def test_a_group_without_its_command_is_a_usage_error() -> None:
    """`tsa keys` alone: one line naming the commands there are, exit 1 (click would
    print the whole help and exit 2, which reads as a failed check)."""
    groups = [((), PROGRAMS[prog][0], prog) for prog in PROGRAMS]
    groups += [
        ((name,), group, prog)
        for prog in PROGRAMS
        for name, group in PROGRAMS[prog][0].commands.items()  # type: ignore[attr-defined]
        if isinstance(group, click.Group)
    ]
    assert len(groups) >= 7
    for path, group, prog in groups:
        code, out, err = run(prog, *path, "--no-such-option")
        assert code == 1 and out == "" and len(err.splitlines()) == 1, (path, err)
        code, out, err = run(prog, *path)
        assert code == 1 and out == "" and len(err.splitlines()) == 1, (path, err)
        if group.invoke_without_command:  # `tsa incident` alone does something: its error
            continue
        assert "missing command" in err and f"`{' '.join((prog, *path))} --help`" in err
        assert all(name in err for name in group.commands), err


# The commands that check something: exit 0 when the check passes, 2 when it fails, each
# tried both ways on real material (a token, a ledger, a proof, a handle of the running
# server). A command whose name says it checks (verify, audit, check) must be here.

Case = Callable[["Material"], tuple[list[str], list[str]]]


class Material:
    """What the checks run on, made once from the session's real server."""

    def __init__(self, tsa: TsaServer, hsm: Hsm, where: Path) -> None:
        self.tsa, self.where = tsa, where
        self.ca, self.chain = str(hsm.ca_file), str(hsm.chain_file)
        self.doc, self.other = where / "doc.txt", where / "other.txt"
        self.doc.write_bytes(b"conventions\n")
        self.other.write_bytes(b"someone else's\n")
        status, _, reply = tsa.post_query(
            make_request(self.doc.read_bytes(), nonce=None, cert_req=True)
        )
        assert status == 200 and tsa.post_query(make_request(b"another"))[0] == 200
        self.reply = where / "reply.tsr"
        self.reply.write_bytes(reply)
        self.ledger = where / "ledger.sqlite"
        copy_ledger(tsa.ledger_path, self.ledger)
        self.tampered = where / "tampered.sqlite"
        copy_ledger(tsa.ledger_path, self.tampered)
        size = SqliteReader(self.ledger).size()
        assert size >= 2
        connection = sqlite3.connect(self.tampered)
        connection.execute("DROP TRIGGER entries_no_update")
        connection.execute("UPDATE entries SET token = CAST(token || x'00' AS BLOB) WHERE idx = 1")
        connection.commit()
        connection.close()
        # a signed checkpoint covering entries 0 and 1, the log's key, the proof of entry 0
        deadline = time.monotonic() + 10
        while True:
            _, _, body = tsa.get("/ledger/tokens/checkpoint")
            if int(body.decode().split("\n")[1]) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.vkey = "@" + str(self.fetch("/ledger/tokens/vkey", "vkey"))
        self.proof = self.fetch("/ledger/tokens/tlog-proof/0", "entry0.tlog-proof")
        reader = SqliteReader(self.ledger)
        self.token0 = where / "token0.der"
        self.token0.write_bytes(reader.entry(0).token)  # type: ignore[union-attr]
        self.token1 = where / "token1.der"
        self.token1.write_bytes(reader.entry(1).token)  # type: ignore[union-attr]
        reader.close()

    def fetch(self, path: str, name: str) -> Path:
        status, _, body = self.tsa.get(path)
        assert status == 200, (path, body)
        (self.where / name).write_bytes(body)
        return self.where / name


def copy_ledger(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()


CHECKS: dict[str, Case | str] = {
    "tsa verify": lambda m: (
        ["verify", str(m.reply), "--data", str(m.doc), "--ca", m.ca],
        ["verify", str(m.reply), "--data", str(m.other), "--ca", m.ca],
    ),
    "tsa audit": lambda m: (
        ["audit", "--ca", m.ca, "--tsa-cert", m.chain, str(m.ledger)],
        ["audit", "--ca", m.ca, "--tsa-cert", m.chain, str(m.tampered)],
    ),
    "tsa-ledger audit": lambda m: (["audit", str(m.ledger)], ["audit", str(m.tampered)]),
    "tsa-ledger verify-token": lambda m: (
        ["verify-token", str(m.token0), str(m.proof), "--vkey", m.vkey],
        ["verify-token", str(m.token1), str(m.proof), "--vkey", m.vkey],
    ),
    "tsa names check": lambda m: (
        ["names", "check", "--config", str(m.tsa.config_path), "星辰"],
        ["names", "check", "--config", str(m.tsa.config_path), "星"],
    ),
    # the incident helper's own test tries a valid, a tampered and a re-signed report
    "tsa incident verify": "tests/incident/test_incident.py",
}


def test_every_command_that_checks_is_tried_both_ways() -> None:
    checking = {
        " ".join((prog, *path))
        for prog, path in COMMANDS
        if any(word in path[-1] for word in ("verify", "audit", "check"))
    }
    assert checking <= set(CHECKS), f"add a case to CHECKS for {checking - set(CHECKS)}"
    for name, case in CHECKS.items():
        if isinstance(case, str):
            assert " ".join(name.split()[1:]) in (ROOT / case).read_text(), name


@pytest.fixture(scope="module")
def material(tsa: TsaServer, hsm: Hsm, tmp_path_factory: pytest.TempPathFactory) -> Material:
    return Material(tsa, hsm, tmp_path_factory.mktemp("checks"))


@pytest.mark.parametrize("name", [n for n, c in CHECKS.items() if not isinstance(c, str)])
def test_a_check_exits_0_when_it_passes_and_2_when_it_fails(name: str, material) -> None:
    prog = name.split()[0]
    case = CHECKS[name]
    assert not isinstance(case, str)
    passes, fails = case(material)
    code, out, err = run(prog, *passes)
    assert code == 0, (out, err)
    code, out, err = run(prog, *fails)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err and len(err.splitlines()) <= 1, err
    takes_json = any(
        "--json" in p.opts for p in command(PROGRAMS[prog][0], tuple(name.split()[1:])).params
    )
    if takes_json:  # a failed check with --json is a JSON document too
        code, out, _ = run(prog, *fails, "--json")
        assert code == 2 and isinstance(json.loads(out), dict | list)
