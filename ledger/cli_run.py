"""How every command of `tsa` and `tsa-ledger` ends: one exit-code convention and one
shape of error.

Exit status: 0 success; 1 a usage or input error (a mistyped option, a missing or
unreadable file, a file of the wrong kind, a server that cannot be reached, a refusal
the operator can fix); 2 a check that ran and failed (a token or ledger that does not
verify, a handle that is refused). Click's own usage errors exit 1 here too (click
uses 2 for them, which would read as "the check failed").

An error is one line on stderr, `<program>: <what went wrong>`, never a traceback
or a library's parse path; usage errors add the `--help` to read. With `--json` on the
command line, the error is a JSON document on stdout instead
(`{"error": ..., "exit_status": 1}`), so a script that parses the output always gets
JSON. The package is the lower one of the two (`tsa` imports it, never the reverse).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Sequence

import click

from ledger.errors import LedgerError

#: The convention, by name.
OK, USAGE, FAILED = 0, 1, 2


def wants_json(argv: Sequence[str]) -> bool:
    """Whether `--json` is among the options (before a `--`)."""
    args = list(argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _command_path(exc: click.ClickException, prog: str) -> str:
    ctx = getattr(exc, "ctx", None)
    return ctx.command_path if isinstance(ctx, click.Context) else prog


def _missing(exc: click.exceptions.NoArgsIsHelpError, prog: str) -> str:
    ctx = exc.ctx
    path = _command_path(exc, prog)
    if ctx is not None and isinstance(ctx.command, click.Group):
        names = ", ".join(ctx.command.list_commands(ctx))
        return f"missing command: one of {names} (see `{path} --help`)"
    return f"missing arguments (see `{path} --help`)"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(prog: str, message: str, as_json: bool, status: int = USAGE) -> int:
    """Report an error the convention's way and return its exit status."""
    if as_json:
        click.echo(json.dumps({"error": one_line(message), "exit_status": status}))
    else:
        click.echo(f"{prog}: {one_line(message)}", err=True)
    return status


def run(group: click.Command, argv: Sequence[str] | None, prog: str) -> int:
    """Run `group` with `argv` (default: the process's arguments) under the convention."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = wants_json(args)
    try:
        code = group.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # `tsa keys` alone: not the whole help
        return fail(prog, _missing(exc, prog), as_json)
    except click.UsageError as exc:
        message = exc.format_message().rstrip(".")
        return fail(prog, f"{message} (see `{_command_path(exc, prog)} --help`)", as_json)
    except click.ClickException as exc:
        status = FAILED if isinstance(exc, CheckFailed) else USAGE
        return fail(prog, exc.format_message(), as_json, status)
    except click.Abort:
        return fail(prog, "interrupted", as_json)
    except LedgerError as exc:
        return fail(prog, str(exc), as_json)
    except sqlite3.Error as exc:
        return fail(prog, f"database error: {exc}", as_json)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return fail(prog, f"{where}{exc.strerror or exc}", as_json)
    return code if isinstance(code, int) else OK


class CheckFailed(click.ClickException):
    """A check that ran and failed, said in one line: exit status 2."""

    exit_code = FAILED
