"""`tsa-ledger`: the auditor's command line. It only reads.

Exit codes: 0 the ledger verifies, 1 usage or I/O error, 2 verification failure.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import click
from asn1crypto import cms, core
from tqdm import tqdm

from ledger.audit import audit
from ledger.binding import find_binding
from ledger.checkpoint import parse_vkey
from ledger.errors import LedgerError
from ledger.proof_file import ProofFile
from ledger.store.sqlite import SqliteReader


@click.group()
def cli() -> None:
    """Audit the TSA's evidence ledger without trusting its operator."""


@cli.command("audit")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar on stderr.")
@click.option("--vkey", default=None, help="The log's note verifier key (or @FILE holding it).")
@click.option("--not-tokens", is_flag=True, help="Entries are not tokens (operations log).")
def audit_command(
    source: str, as_json: bool, quiet: bool, vkey: str | None, not_tokens: bool
) -> None:
    """Replay every entry of the SQLite ledger SOURCE and report every failure."""
    verifier = _verifier(vkey) if vkey else None
    try:
        reader = SqliteReader(Path(source))
        total = reader.size()
        checkpoints = reader.checkpoints()
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read {source} as a ledger: {exc}") from None
    bar = tqdm(total=total, unit="entries", disable=quiet, file=sys.stderr, smoothing=0.1)

    def progress(done: int, _bytes: int) -> None:
        if done % 1024 == 0 or done == total:
            bar.update(done - bar.n)

    report = audit(
        reader.entries(),
        checkpoints=checkpoints,
        verifier=verifier,
        origin=verifier.name if verifier else None,
        tokens=not not_tokens,
        progress=progress,
    )
    bar.close()
    reader.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for warning in report.warnings:
            click.echo(f"WARNING {warning}")
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


def _verifier(vkey: str):
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
        return outer[1].dump()
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"not a TimeStampResp or TimeStampToken: {exc}") from None


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
