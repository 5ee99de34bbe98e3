"""`tsa-ledger`: the auditor's command line. It only reads.

Exit codes: 0 the ledger verifies, 1 usage or I/O error, 2 verification failure.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ledger.audit import audit
from ledger.store.sqlite import SqliteReader


@click.group()
def cli() -> None:
    """Audit the TSA's evidence ledger without trusting its operator."""


@cli.command("audit")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar on stderr.")
def audit_command(source: str, as_json: bool, quiet: bool) -> None:
    """Replay every entry of the SQLite ledger SOURCE and report every failure."""
    try:
        reader = SqliteReader(Path(source))
        total = reader.size()
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read {source} as a ledger: {exc}") from None
    bar = tqdm(total=total, unit="entries", disable=quiet, file=sys.stderr, smoothing=0.1)

    def progress(done: int, _bytes: int) -> None:
        if done % 1024 == 0 or done == total:
            bar.update(done - bar.n)

    report = audit(reader.entries(), progress=progress)
    bar.close()
    reader.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for failure in report.failures:
            where = "-" if failure.index is None else failure.index
            click.echo(f"FAIL index {where} [{failure.check}] {failure.message}")
        rate = report.size / report.seconds if report.seconds else 0
        click.echo(
            f"{'OK' if report.ok else 'FAILED'}: {report.size} entries, "
            f"root {report.root.hex()}, chain head {report.chain_head.hex()}, "
            f"{len(report.failures)} failure(s), {report.seconds:.1f} s ({rate:,.0f} entries/s)"
        )
    if not report.ok:
        click.get_current_context().exit(2)


def main(argv: list[str] | None = None) -> int:
    try:
        code = cli.main(args=argv, prog_name="tsa-ledger", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        exc.show()
        return 1
    except click.ClickException as exc:
        exc.show()
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
