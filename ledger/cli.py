"""`tsa-ledger`: the auditor's command line. It only reads.

Exit status (ledger/cli_run.py, shared with `tsa`): 0 the ledger verifies, 1 usage or
input error, 2 verification failure; errors are one line, or JSON with --json.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from asn1crypto import cms, core
from tqdm import tqdm

from ledger import audit_state
from ledger.audit import AuditReport, Inspect, audit, inspect_entry, inspect_token
from ledger.audit_ranges import audit_file
from ledger.binding import find_binding
from ledger.checkpoint import NoteVerifier, parse_vkey
from ledger.cli_run import run
from ledger.cli_sources import (
    SqliteSource,
    audit_each,
    holds_tokens,
    open_source,
    published_vkey,
)
from ledger.errors import LedgerError
from ledger.hashing import CHAIN_GENESIS
from ledger.proof_file import ProofFile


@click.group()
def cli() -> None:
    """Audit the TSA's evidence ledger without trusting its operator."""


def usable_cpus() -> int:
    """The CPUs this process may run on (at most 64, the most -j takes)."""
    return max(1, min(64, len(os.sched_getaffinity(0))))


def run_audit(
    source: str,
    *,
    vkey: str | None,
    tokens: bool | None,
    quiet: bool,
    jobs: int | None,
    inspect: Inspect | None = None,
    resume: str | None = None,
) -> AuditReport:
    """Open SOURCE and audit it with one progress bar on stderr when stderr is a
    terminal, whatever the number of worker processes (shared by `tsa audit`).

    `tokens` None: the log's first entry says whether it holds tokens or the operations
    log's events (then `inspect` is not used: events are not tokens). Without `vkey`,
    the key the log publishes (`<log>/vkey`) checks the checkpoints' signatures, with a
    warning that the server vouched for its own key; without either they are not
    checked, and the report says where the key is. `jobs` None: one worker process per
    CPU for a SQLite file replayed by ranges, else one."""
    opened = open_source(source)
    if tokens is None:
        tokens = holds_tokens(opened)
    if not tokens:
        inspect = inspect_entry
    notes: list[str] = []
    if vkey is None and (published := published_vkey(source)) is not None:
        vkey = published
        notes.append(
            "checkpoint signatures checked with the key the log itself publishes (vkey): "
            "pin it with --vkey @FILE for an audit that does not trust the server"
        )
    elif vkey is None:
        notes.append(
            "checkpoint signatures not checked: give --vkey @FILE with the log's key, "
            "from the server at /ledger/tokens/vkey (operations log: /ledger/ops/vkey)"
        )
    verifier = _verifier(vkey) if vkey else None
    state_path = Path(resume) if resume else None
    state = None
    if state_path is not None and state_path.exists():
        try:
            state = audit_state.load(state_path, source)
        except LedgerError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        total, checkpoints = opened.size(), opened.checkpoints()
        if state is not None and state.size > total:
            raise LedgerError(
                f"the log has {total} entries but an earlier audit saw {state.size}: "
                "entries lost or rolled back"
            )
        kind = "tokens" if tokens else "events"
        bar = tqdm(
            total=total,
            unit=kind,
            disable=quiet or not _is_terminal(sys.stderr),  # no bar in a log or a pipe
            file=_ThisProcess(),
            smoothing=0.1,
        )

        def progress(done: int, _bytes: int) -> None:
            if done % 1024 == 0 or done == total:
                bar.update(done - bar.n)

        start = state.size if state else 0
        by_ranges = state is None and isinstance(opened, SqliteSource)
        if jobs is None:
            jobs = usable_cpus() if by_ranges else 1
        options = dict(
            checkpoints=checkpoints,
            verifier=verifier,
            origin=verifier.name if verifier else None,
            inspect=inspect or (inspect_token if tokens else inspect_entry),
            jobs=jobs,
            progress=progress,
            stored_node=opened.stored_node,
        )
        if state is None and isinstance(opened, SqliteSource):  # by ranges: same findings
            report = audit_file(opened.path, **options)  # type: ignore[arg-type]
        else:
            report = audit(
                opened.entries(tokens, start, state.chain_head if state else CHAIN_GENESIS),
                state=state,
                **options,  # type: ignore[arg-type]
            )
        bar.close()
        if state_path is not None and report.ok and report.state is not None:
            audit_state.save(state_path, source, report.state)
    except (sqlite3.Error, LedgerError) as exc:
        raise click.ClickException(f"cannot read {source}: {exc}") from None
    report.warnings[:0] = notes
    report.warnings[:] = [w for w in report.warnings if not w.startswith(_UNSIGNED)]
    report.kind = "token log" if tokens else "operations log"
    return report


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # closed or detached
        return False


class _ThisProcess:
    """stderr for the progress bar, silent in the forked audit workers (-j N): they
    inherit a copy of the bar and would draw it again, once each, as they end."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def write(self, text: str) -> None:
        if os.getpid() == self.pid:
            sys.stderr.write(text)

    def flush(self) -> None:
        if os.getpid() == self.pid:
            sys.stderr.flush()


_UNSIGNED = "checkpoint signatures not verified"  # ledger/audit.py's; ours says where


def print_reports(reports: list[tuple[str, AuditReport]], as_json: bool) -> None:
    """Each log's report (JSON: one document, a list when there are several); exit 2
    when any failed."""
    if as_json:
        documents = [{"source": log, **report.as_dict()} for log, report in reports]
        click.echo(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    else:
        for log, report in reports:
            if len(reports) > 1:
                click.echo(f"== {log}")
            _print_text(report)
    if not all(report.ok for _, report in reports):
        click.get_current_context().exit(2)


def _print_text(report: AuditReport) -> None:
    for warning in report.warnings:
        click.echo(f"WARNING {warning}")
    for failure in report.failures:
        where = "-" if failure.index is None else failure.index
        click.echo(f"FAIL index {where} [{failure.check}] {failure.message}")
    rate = report.size / report.seconds if report.seconds else 0
    click.echo(
        f"{'OK' if report.ok else 'FAILED'}: {report.kind}, {report.size} entries, "
        f"{report.checkpoints} checkpoints and {report.signatures} signatures checked, "
        f"{len(report.failures)} failure(s); root {report.root.hex()}, chain head "
        f"{report.chain_head.hex()}; {report.seconds:.1f} s ({rate:,.0f} entries/s)"
    )


_Command = TypeVar("_Command", bound=Callable[..., object])

audit_options = [
    click.argument("source"),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout."),
    click.option(
        "--quiet", is_flag=True, help="No progress bar (drawn only when stderr is a terminal)."
    ),
    click.option("--vkey", default=None, help="The log's note verifier key (or @FILE)."),
    click.option(
        "--resume",
        default=None,
        metavar="STATE",
        help="State file: replay only entries after the last successful audit recorded in "
        "it (created or updated when the audit passes).",
    ),
    click.option(
        "-j",
        "--jobs",
        default=None,
        type=click.IntRange(1, 64),
        help="Worker processes for the per-token checks. Default: one per CPU for a "
        "SQLite file (replayed by ranges), else 1.",
    ),
]


def with_audit_options(command: _Command) -> _Command:
    for option in reversed(audit_options):
        command = option(command)
    return command


@cli.command("audit")
@with_audit_options
@click.option(
    "--not-tokens",
    is_flag=True,
    hidden=True,
    help="Entries are not tokens (found by itself: the operations log's are JSON events).",
)
@click.option(
    "--tree-only",
    is_flag=True,
    help="Entries, leaf hashes, chain, tree and checkpoints only: no token parsing.",
)
def audit_command(
    source: str,
    as_json: bool,
    quiet: bool,
    vkey: str | None,
    resume: str | None,
    jobs: int | None,
    not_tokens: bool,
    tree_only: bool,
) -> None:
    """Replay the log at SOURCE (SQLite file, a log's URL, or a directory mirroring the
    tiles; the token log or the operations log, told apart by their entries), or every
    log a TSA server lists when SOURCE is its URL, and report every failure with its
    index. For token signatures and chains,
    use `tsa audit`."""
    reports = [
        (
            log,
            run_audit(
                log,
                vkey=vkey,
                tokens=False if not_tokens else None,
                quiet=quiet,
                jobs=jobs,
                inspect=inspect_entry if tree_only else None,
                resume=resume,
            ),
        )
        for log in audit_each(source, vkey, resume)
    ]
    print_reports(reports, as_json)


def _verifier(vkey: str) -> NoteVerifier:
    text = Path(vkey[1:]).read_text().strip() if vkey.startswith("@") else vkey.strip()
    try:
        return parse_vkey(text).verifier()
    except LedgerError as exc:
        raise click.ClickException(f"bad verifier key: {exc}") from None


@cli.command("verify-token")
@click.argument("token_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--vkey", required=True, help="The log's note verifier key (or @FILE).")
def verify_token_command(token_file: str, proof_file: str, vkey: str) -> None:
    """Check offline that TOKEN_FILE (.tsr or token DER) is in the log, by PROOF_FILE
    (c2sp.org/tlog-proof@v1), its LedgerBinding and the signed checkpoint (L-16)."""
    verifier = _verifier(vkey)
    data = Path(token_file).read_bytes()
    try:
        token = _token_der(data)
        proof = ProofFile.parse(Path(proof_file).read_text())
        checkpoint = proof.verify(token, verifier)
    except (LedgerError, ValueError) as exc:
        click.echo(f"INVALID: {exc}")
        click.get_current_context().exit(2)
    tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    binding = find_binding(tst)
    if binding is not None:
        if binding.leaf_index != proof.index or binding.origin != checkpoint.origin:
            click.echo("INVALID: the token's LedgerBinding names another place in the log")
            click.get_current_context().exit(2)
        if binding.anchor_size > binding.leaf_index:
            click.echo("INVALID: LedgerBinding anchor is above its own index")
            click.get_current_context().exit(2)
    click.echo(
        f"OK: entry {proof.index} of {checkpoint.origin}, included in the signed checkpoint "
        f"of size {checkpoint.size}"
    )


def _token_der(data: bytes) -> bytes:
    """The TimeStampToken DER from a .tsr (TimeStampResp) or a bare token."""
    try:
        outer = core.Sequence.load(data, strict=True)
        if outer[0].tag == 6:  # ContentInfo starts with its contentType OID
            return data
        if len(outer) < 2:
            raise ValueError("the response carries no token")
        token: bytes = outer[1].dump()
        return token
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"not a TimeStampResp or TimeStampToken: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv, "tsa-ledger")


if __name__ == "__main__":
    sys.exit(main())
