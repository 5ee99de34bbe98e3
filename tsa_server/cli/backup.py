"""`tsa backup DEST` and `tsa restore SRC` (tsa_server/backup/): parse, call the use
case, print. A copy that does not verify is a failed check (exit status 2); a refusal
the operator can fix (server running, backup behind, PostgreSQL) exits 1."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.audit import inspect_token
from ledger.cli_run import CheckFailed
from tsa_server.backup.manifest import BackupCheckFailed
from tsa_server.cli.audit import TokenInspector
from tsa_server.cli.options import config_option
from tsa_server.config import Config, load_config
from tsa_server.rfc3161.verify import VerifyOptions


def _inspector(config: Config) -> TokenInspector:
    """The token checks `tsa audit` runs with this TSA's own trust roots and chain."""
    from tsa_server.wiring import load_chain, load_trust_roots

    return TokenInspector(
        VerifyOptions(trust_roots=load_trust_roots(config), extra_certs=load_chain(config))
    )


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.command("backup")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@config_option
@click.option(
    "--files-only",
    is_flag=True,
    help="Only the checkpoint directories and stored originals (a PostgreSQL installation, "
    "whose database is backed up with pg_basebackup or pg_dump).",
)
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def backup_command(dest: Path, config_path: str, files_only: bool, quiet: bool) -> None:
    """Copy every store, checkpoint and stored original into a new snapshot DEST/<time>
    while the server runs, and audit the copy."""
    from tsa_server.backup.take import ORIGINALS_IN_DATABASE, take_backup

    config = load_config(config_path)
    needs_audit = not (files_only or config.database.url)
    try:
        done = take_backup(
            config,
            dest,
            _inspector(config) if needs_audit else inspect_token,
            files_only=files_only,
            say=(lambda _line: None) if quiet else _say,
        )
    except BackupCheckFailed as exc:
        raise CheckFailed(str(exc)) from None
    for warning in done.warnings:
        click.echo(f"WARNING {warning}")
    blobs = done.manifest["blobs"]
    click.echo(f"backup {done.snapshot}")
    for log, summary in done.manifest.get("ledgers", {}).items():
        checkpoint = summary["checkpoint"]
        click.echo(
            f"  {log} log: {summary['size']} entries, latest checkpoint "
            f"{checkpoint['size'] if checkpoint else 'none'}"
        )
    if blobs.get("in_database"):
        click.echo(f"  stored originals: {ORIGINALS_IN_DATABASE}")
    else:
        click.echo(
            f"  stored originals: {blobs['count']} ({blobs['copied']} copied, "
            f"{blobs['linked']} already in the previous backup)"
        )
    if "audit" in done.manifest:
        click.echo("  audit of the copy: OK")
    click.echo(f"  manifest sha256 {done.manifest_sha256}")


@click.command("restore")
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@config_option
@click.option(
    "--accept-loss",
    is_flag=True,
    help="Restore a backup that is behind this installation (entries issued or published "
    "after it are lost); the lost index ranges are recorded in the operations log.",
)
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def restore_command(src: Path, config_path: str, accept_loss: bool, quiet: bool) -> None:
    """Restore the backup SRC (a snapshot, or a DEST of `tsa backup`: its latest) into the
    state of --config, with the server stopped."""
    from tsa_server.backup.restore import restore

    config = load_config(config_path)
    try:
        done = restore(
            config,
            src,
            inspect_token if config.database.url else _inspector(config),
            accept_loss=accept_loss,
            say=(lambda _line: None) if quiet else _say,
        )
    except BackupCheckFailed as exc:
        raise CheckFailed(str(exc)) from None
    click.echo(f"restored {done.snapshot}; serial epoch {done.epoch}")
    for log, lost in done.lost.items():
        if lost:
            click.echo(
                f"  {log} log: entries {lost['from_index']}..{lost['to_index']} "
                f"({lost['entries']}) lost, recorded in the operations log at index "
                f"{done.event_index}"
            )
    for path in done.set_aside:
        click.echo(f"  kept the replaced {path}")
