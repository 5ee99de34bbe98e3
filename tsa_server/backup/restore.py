"""`tsa restore SRC`: put a snapshot back in place of the state of [--config], with the
server stopped (its PID file is held for the whole restore, so it cannot start midway).

Before anything changes: the snapshot is checked against its manifest (every file's
SHA-256, every original's key) and audited like a fresh backup (backup/verify.py), and
compared with what this installation has published (backup/live.py). A snapshot behind
the live state would lose entries: it is refused, saying how many, unless the operator
accepts the loss explicitly (``accept_loss``).

Then: each live database (with its WAL and derived lookup files) and checkpoint
directory is renamed aside to `<name>.pre-restore-<time>`, never deleted, and the
snapshot's copies are renamed into place; originals the live blob store lacks are
copied in (it is content-addressed: nothing in it conflicts with the snapshot).

Serial numbers are `2^120 | epoch << 64 | counter` and every start claims epoch + 1 from
the token ledger, so a ledger restored with an older epoch would issue again serials
already sent to clients. The restored ledger's epoch is set to the live ledger's when
it is still readable (every epoch ever claimed on this installation is at most that),
and otherwise moved 2^32 epochs ahead of the snapshot's (more start-ups than a server
makes in a century), so no restore can reuse a serial.

Last, a `restore` event in the restored operations log records the snapshot, the
epoch, and for each log the index range lost and the checkpoints it was published in,
so an auditor sees the loss. The restored state is one the rollback tripwire
(`check_rollback`) accepts on its own terms: the checkpoint directories come from the
snapshot and are never ahead of its ledgers; the published checkpoints of the lost
entries stay in the directories set aside. A rollback done without `tsa restore` (old
databases copied over live ones) still meets the live checkpoint files, and the
server still refuses to start on it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.audit import Inspect
from ledger.files import make_private_dirs
from ledger.store.sqlite import SqliteReader, SqliteStore
from tsa_server.backup import files
from tsa_server.backup.blobs import BLOB_MODE, live_keys
from tsa_server.backup.live import LiveLog, assess, ops_witness
from tsa_server.backup.manifest import (
    BLOBS,
    BackupCheckFailed,
    BackupError,
    blob_path,
    check_snapshot,
    read_manifest,
)
from tsa_server.backup.take import EVIDENCE, LATEST, NAMES, POSTGRES_DOCS
from tsa_server.backup.verify import OPS, OPS_CHECKPOINTS, TOKEN_CHECKPOINTS, TOKENS, audit_snapshot
from tsa_server.config import Config
from tsa_server.issuance.opslog import OpsLog
from tsa_server.pidfile import AlreadyRunning, PidFile

EPOCH_GAP = 1 << 32  # serial epochs skipped when the live epoch is unknown
MAX_EPOCH = 1 << 56  # the issuer's limit (issuance/issuer.py)


@dataclass
class Restored:
    snapshot: Path
    event_index: int
    epoch: int
    lost: dict[str, dict[str, Any] | None]
    set_aside: list[str] = field(default_factory=list)


def resolve_snapshot(source: Path) -> Path:
    """SRC itself, or the snapshot its `latest` link names (SRC given as the DEST of
    `tsa backup`)."""
    if not source.is_dir():
        raise BackupError(f"{source}: no such backup directory")
    if not (source / "manifest.json").exists() and (source / LATEST).is_symlink():
        return (source / LATEST).resolve()
    return source


def _loss_message(logs: list[LiveLog]) -> str:
    parts = []
    for log in logs:
        if not log.lost:
            continue
        published = log.published_size > log.copy_size
        parts.append(
            f"the {log.name} log: the backup holds {log.copy_size} entries but this installation "
            + (
                f"published checkpoint {log.published_size}"
                if published
                else f"holds {log.known_size} (issued after its last checkpoint)"
            )
            + f", so entries {log.copy_size}..{log.known_size - 1} ({log.lost}) would be lost"
        )
    return "; ".join(parts)


def restore(
    config: Config,
    source: Path,
    inspect: Inspect,
    *,
    accept_loss: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    say: Callable[[str], None] = lambda _line: None,
) -> Restored:
    if config.database.url:
        raise BackupError(
            "[database] url is set: restore the PostgreSQL database with its own tools, "
            f"then the files, as {POSTGRES_DOCS} describes"
        )
    snapshot = resolve_snapshot(source)
    try:
        pid = PidFile(Path(config.server.pid_file)).acquire()
    except AlreadyRunning as exc:
        raise BackupError(f"the server is running: stop it before restoring ({exc})") from None
    try:
        return _restore(config, snapshot, inspect, accept_loss, now(), say)
    finally:
        pid.release()


def _restore(
    config: Config,
    snapshot: Path,
    inspect: Inspect,
    accept_loss: bool,
    started: datetime,
    say: Callable[[str], None],
) -> Restored:
    manifest, digest = read_manifest(snapshot)
    if manifest.get("kind") != "full":
        raise BackupError(
            f"{snapshot} is a files-only backup: restore its database with PostgreSQL's tools"
        )
    say(f"checking {snapshot} against its manifest")
    problems = check_snapshot(snapshot, manifest)
    if problems:
        raise BackupCheckFailed(
            f"the backup {snapshot} is damaged ({len(problems)} problem(s): "
            f"{'; '.join(problems[:3])}); refusing to restore it, nothing was changed"
        )
    ledger = config.ledger
    origins = {"tokens": ledger.origin, "ops": ledger.ops_origin}
    if manifest.get("origins") != origins:
        raise BackupError(
            f"the backup is of the logs {manifest.get('origins')}, this configuration's are "
            f"{origins}: refusing to restore another installation's backup"
        )
    say("auditing the backup")
    audited = audit_snapshot(snapshot, origins, inspect)
    if not audited.ok:
        failures = audited.failures()
        raise BackupCheckFailed(
            f"the backup {snapshot} does not verify ({'; '.join(failures[:3])}); "
            "refusing to restore it, nothing was changed"
        )
    token_path, ops_path = Path(ledger.path), Path(ledger.ops_path)
    tokens_copy, ops_copy = SqliteReader(snapshot / TOKENS), SqliteReader(snapshot / OPS)
    try:
        witness = ops_witness(ops_path, ledger.origin)
        logs = [
            assess("tokens", token_path, Path(ledger.checkpoint_dir), tokens_copy, witness),
            assess("ops", ops_path, Path(ledger.ops_checkpoint_dir), ops_copy),
        ]
    finally:
        tokens_copy.close()
        ops_copy.close()
    if any(log.lost for log in logs) and not accept_loss:
        raise BackupError(
            f"the backup {snapshot} is behind this installation: {_loss_message(logs)}. "
            "Nothing was changed. To restore it anyway, accept the loss explicitly with "
            "--accept-loss (the lost indices are then recorded in the operations log)"
        )
    copy_epoch = int(manifest["ledgers"]["tokens"]["epoch"])
    live_epoch = logs[0].epoch
    epoch = max(copy_epoch, live_epoch) if live_epoch is not None else copy_epoch + EPOCH_GAP
    if epoch >= MAX_EPOCH - 1:
        raise BackupError("the serial epoch space is exhausted: no restore can keep serials unique")
    suffix = f".pre-restore-{started.strftime('%Y%m%dT%H%M%SZ')}"
    set_aside = _swap_in(config, snapshot, suffix, say)
    _copy_blobs(snapshot / BLOBS, Path(config.evidence.blobs))
    _set_epoch(token_path, epoch)
    lost = {log.name: log.record() for log in logs}
    store = SqliteStore(ops_path)
    try:
        index = OpsLog(store).record(
            "restore",
            snapshot=str(snapshot.resolve()),
            manifest_sha256=digest,
            backup_started_at=manifest.get("started_at"),
            restored_sizes={log.name: log.copy_size for log in logs},
            accepted_loss=accept_loss and any(log.lost for log in logs),
            lost=lost,
            serial_epoch=epoch,
            live_epoch_known=live_epoch is not None,
            set_aside=set_aside,
        )
    finally:
        store.close()
    return Restored(snapshot, index, epoch, lost, set_aside)


def _swap_in(config: Config, snapshot: Path, suffix: str, say: Callable[[str], None]) -> list[str]:
    """Stage every copy beside its target, then set the live ones aside and rename the
    copies into place (a failure while staging changes nothing live)."""
    ledger = config.ledger
    databases = [
        (TOKENS, Path(ledger.path)),
        (OPS, Path(ledger.ops_path)),
        (EVIDENCE, Path(config.evidence.path)),
        (NAMES, Path(config.names.path)),
    ]
    directories = [
        (TOKEN_CHECKPOINTS, Path(ledger.checkpoint_dir)),
        (OPS_CHECKPOINTS, Path(ledger.ops_checkpoint_dir)),
    ]
    staged: list[tuple[Path | None, Path]] = []
    for name, target in databases:
        if (snapshot / name).is_file():
            temp = target.with_name(f".{target.name}.restore-tmp")
            files.copy_file(snapshot / name, temp)
            staged.append((temp, target))
        else:
            staged.append((None, target))
    for name, target in directories:
        temp = target.with_name(f".{target.name}.restore-tmp")
        files.remove_tree(temp)
        make_private_dirs(temp)
        for path in sorted((snapshot / name).rglob("*")):
            if path.is_file():
                files.copy_file(path, temp / path.relative_to(snapshot / name))
        staged.append((temp, target))
    set_aside: list[str] = []
    for staged_copy, target in staged:
        if staged_copy is not None and staged_copy.is_dir():
            family = [target]
        else:
            family = files.sqlite_family(target)
        for path in family:
            aside = files.move_aside(path, suffix)
            if aside is not None:
                set_aside.append(str(aside))
                say(f"set aside {path} as {aside}")
        if staged_copy is not None:
            os.replace(staged_copy, target)
            files.fsync_dir(target.parent)
    return set_aside


def _copy_blobs(source: Path, target: Path) -> None:
    for key, path in live_keys(source):
        final = blob_path(target, key)
        if final.is_file() and final.stat().st_size == path.stat().st_size:
            continue
        make_private_dirs(final.parent)
        files.copy_file(path, final, BLOB_MODE)


def _set_epoch(ledger: Path, epoch: int) -> None:
    conn = sqlite3.connect(ledger, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE seq SET epoch = MAX(epoch, ?) WHERE id = 1", (epoch,))
        conn.execute("COMMIT")
    finally:
        conn.close()
