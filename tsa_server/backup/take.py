"""`tsa backup DEST`: an online, consistent copy of the whole state while the server
runs and issues, into a fresh snapshot directory DEST/<UTC time> (DEST/latest names the
newest), audited before it counts.

Each backup is a snapshot of its own, complete by itself, so that old ones can be
pruned with `rm -r` and restoring never needs a chain of increments; originals already
in the previous snapshot are hard-linked, not copied (backup/blobs.py). The snapshot is
written as DEST/.<time>.partial and renamed only once its manifest is written, so a
snapshot directory without the dot is complete and verified.

The order of the copies makes the snapshot self-consistent. Every reference between the
stores points from a store written later to one written earlier, so each store is
copied *before* the stores it refers to, and the one everything refers to last:

1. the evidence database: its items name token serials and ledger indices, operations
   log indices (ops.record returns before the row is written) and stored originals;
2. the names database: its records name tokens and operations log indices;
3. the stored originals: installed before the items that reference them, so copying
   them after the evidence database finds every original it names (an original installed
   meanwhile is an orphan in the copy, harmless; one named but not yet listed is copied
   by `complete_references`);
4. the operations log's checkpoint directory, then the operations log: the publisher
   writes the files before it archives the checkpoint, so every file copied names a
   size the log copied afterwards holds;
5. the token log's checkpoint directory, then the token log itself, last: the
   operations log records token-log checkpoints (the rollback tripwire's witness), the
   evidence and names databases name tokens; all were copied before, so all they name
   is in the token log copy. Every token acknowledged before the backup started is in it.

A checkpoint published between a directory's copy and its log's copy is written into
the copied directory from the log's archive (backup/checkpoints.py). Each SQLite copy
is a consistent snapshot of its file (SQLite's online backup API, backup/files.py).
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
from ledger.files import DIR_MODE, make_private_dirs
from ledger.store.sqlite import SqliteReader
from tsa_server.backup import checkpoints
from tsa_server.backup.blobs import BlobCopier, BlobCopy
from tsa_server.backup.files import copy_sqlite, fsync_dir, sha256_file
from tsa_server.backup.manifest import (
    BLOBS,
    FORMAT,
    NAME,
    BackupCheckFailed,
    BackupError,
    write_manifest,
)
from tsa_server.backup.verify import OPS, OPS_CHECKPOINTS, TOKEN_CHECKPOINTS, TOKENS, audit_snapshot
from tsa_server.config import Config

EVIDENCE, NAMES = "evidence.sqlite", "names.sqlite"
LATEST = "latest"
POSTGRES_DOCS = 'docs/operations.md, section "Backups and restore" (PostgreSQL)'
ORIGINALS_IN_DATABASE = (
    "in the PostgreSQL database ([evidence] blob_backend), not copied: they are in its backup"
)


@dataclass
class Backup:
    snapshot: Path
    manifest_sha256: str
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def snapshot_name(now: datetime, dest: Path) -> str:
    base = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name, n = base, 1
    while (dest / name).exists() or (dest / f".{name}.partial").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def previous_snapshot(dest: Path) -> Path | None:
    """The newest complete snapshot in DEST (the one `latest` names, else by name)."""
    link = dest / LATEST
    if link.is_symlink() and (link.resolve() / NAME).is_file():
        return link.resolve()
    done = sorted(p for p in dest.iterdir() if p.is_dir() and (p / NAME).is_file())
    return done[-1] if done else None


def ledger_summary(path: Path) -> dict[str, Any]:
    reader = SqliteReader(path)
    try:
        latest = reader.latest_checkpoint()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (epoch,) = conn.execute("SELECT epoch FROM seq WHERE id = 1").fetchone()
        finally:
            conn.close()
        return {
            "size": reader.size(),
            "epoch": int(epoch),
            "checkpoint": None
            if latest is None
            else {"size": latest.size, "root": latest.root.hex()},
        }
    finally:
        reader.close()


def _describe(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def take_backup(
    config: Config,
    dest: Path,
    inspect: Inspect,
    *,
    files_only: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    say: Callable[[str], None] = lambda _line: None,
) -> Backup:
    """Copy the state of ``config`` into a new snapshot of ``dest`` and audit it."""
    if config.database.url and not files_only:
        raise BackupError(
            "[database] url is set: the ledgers, evidence and names live in PostgreSQL, "
            "which `tsa backup` does not copy; back them up with PostgreSQL's own tools "
            f"(pg_basebackup or pg_dump) and the files with `tsa backup --files-only`: "
            f"see {POSTGRES_DOCS}"
        )
    ledger = config.ledger
    token_path, ops_path = Path(ledger.path), Path(ledger.ops_path)
    if not files_only:
        for path in (token_path, ops_path):
            if not path.is_file():
                raise BackupError(f"no ledger at {path}: nothing to back up (wrong --config?)")
    created = not dest.exists()
    make_private_dirs(dest)
    if created:
        os.chmod(dest, DIR_MODE)
    started = now()
    name = snapshot_name(started, dest)
    work = dest / f".{name}.partial"
    work.mkdir(mode=DIR_MODE)
    previous = previous_snapshot(dest)
    sources: dict[str, str] = {}
    order: list[str] = []

    def step(label: str, source: Path) -> None:
        order.append(label)
        sources[label] = str(source.resolve())
        say(f"copying {label} from {source}")

    if not files_only:
        for label, source in (
            (EVIDENCE, Path(config.evidence.path)),
            (NAMES, Path(config.names.path)),
        ):
            if source.is_file():
                step(label, source)
                copy_sqlite(source, work / label)
    from tsa_server.wiring.databases import blobs_in_database

    if blobs_in_database(config):  # --files-only: they are in the PostgreSQL backup
        say(f"stored originals: {ORIGINALS_IN_DATABASE}")
        blobs = BlobCopy()
    else:
        step(BLOBS, Path(config.evidence.blobs))
        copier = BlobCopier(work / BLOBS, previous / BLOBS if previous else None)
        copier.copy_all(Path(config.evidence.blobs))
        copier.complete_references(work / EVIDENCE, Path(config.evidence.blobs))
        copier.finish()
        blobs = copier.result
    step(OPS_CHECKPOINTS, Path(ledger.ops_checkpoint_dir))
    checkpoints.copy_directory(Path(ledger.ops_checkpoint_dir), work / OPS_CHECKPOINTS)
    if not files_only:
        step(OPS, ops_path)
        copy_sqlite(ops_path, work / OPS)
    step(TOKEN_CHECKPOINTS, Path(ledger.checkpoint_dir))
    checkpoints.copy_directory(Path(ledger.checkpoint_dir), work / TOKEN_CHECKPOINTS)
    if not files_only:
        step(TOKENS, token_path)
        copy_sqlite(token_path, work / TOKENS)
        for db, directory in ((OPS, OPS_CHECKPOINTS), (TOKENS, TOKEN_CHECKPOINTS)):
            reader = SqliteReader(work / db)
            try:
                checkpoints.complete_from_archive(work / directory, reader)
            finally:
                reader.close()
    files: dict[str, Any] = {}
    for label in (EVIDENCE, NAMES, OPS, TOKENS):
        if (work / label).is_file():
            files[label] = _describe(work / label)
    for directory in (OPS_CHECKPOINTS, TOKEN_CHECKPOINTS):
        files |= checkpoints.describe(work / directory, directory)
    warnings = list(blobs.warnings)
    warnings += [
        f"stored original {key} in the live store does not hash to its key: damaged, not copied"
        for key in blobs.damaged
    ]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "kind": "files-only" if files_only else "full",
        "started_at": started.isoformat(),
        "origins": {"tokens": ledger.origin, "ops": ledger.ops_origin},
        "order": order,
        "sources": sources,
        "previous": previous.name if previous else None,
        "files": files,
        "blobs": blobs.summary() | ({"in_database": True} if BLOBS not in order else {}),
        "warnings": warnings,
    }
    if not files_only:
        manifest["ledgers"] = {
            "tokens": ledger_summary(work / TOKENS),
            "ops": ledger_summary(work / OPS),
        }
        say("auditing the copy")
        result = audit_snapshot(work, manifest["origins"], inspect)
        manifest["audit"] = result.summary()
        if not result.ok:
            failures = result.failures()
            raise BackupCheckFailed(
                f"the backup in {work} does not verify ({len(failures)} failure(s), first: "
                f"{'; '.join(failures[:3])}); it is not a usable backup: the live state may be "
                "damaged, run `tsa audit` on it"
            )
    manifest["finished_at"] = now().isoformat()
    digest = write_manifest(work, manifest)
    snapshot = dest / name
    os.replace(work, snapshot)
    _point_latest(dest, name)
    return Backup(snapshot, digest, manifest, warnings)


def _point_latest(dest: Path, name: str) -> None:
    temp = dest / f".{LATEST}.tmp"
    temp.unlink(missing_ok=True)
    os.symlink(name, temp)
    os.replace(temp, dest / LATEST)
    fsync_dir(dest)
