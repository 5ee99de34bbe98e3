"""The one exit-code convention (ledger/cli_run.py), for every command of `tsa` and
`tsa-ledger`: 0 success, 1 usage or input error, 2 a check that failed; an error is one
line on stderr, or a JSON document on stdout with --json. Every command is found by
walking the click groups, so a new command is held to it without a new test."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import click
import pytest
from click.testing import CliRunner

from ledger import cli as ledger_cli
from tsa_server import cli as tsa_cli


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
