"""The manifest of a backup (`manifest.json`, written last: a snapshot without one is
incomplete and never restored): when it was taken, the order its stores were copied
in, every file with its size and SHA-256, every stored original by its content key
(which is its SHA-256), the size, serial epoch and latest checkpoint of each log, and
the audit of the copy.

`check_snapshot` verifies a snapshot against its manifest: every file listed is there
with its size and hash, no blob is missing or altered. It reads everything once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ledger.files import FILE_MODE
from tsa_server.backup.files import fsync_dir, fsync_file, sha256_file, temporary_name
from tsa_server.errors import TSAError

FORMAT = "tsa-backup/1"
NAME = "manifest.json"
BLOBS = "blobs"


class BackupError(TSAError):
    """A backup or restore that cannot be done as asked: one line for the operator."""


class BackupCheckFailed(BackupError):
    """A copy that does not verify (its files, its blobs or its audit)."""


def write_manifest(snapshot: Path, manifest: dict[str, Any]) -> str:
    """Write the manifest durably; its SHA-256 (the snapshot's identity)."""
    data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    path = snapshot / NAME
    temp = temporary_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    fsync_file(temp)
    os.replace(temp, path)
    fsync_dir(snapshot)
    return hashlib.sha256(data).hexdigest()


def read_manifest(snapshot: Path) -> tuple[dict[str, Any], str]:
    """The manifest of ``snapshot`` and its SHA-256; BackupError if there is none."""
    path = snapshot / NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BackupError(
            f"{snapshot} is not a complete backup: it has no {NAME} (an interrupted or "
            "failed backup, or not a backup directory)"
        ) from None
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise BackupCheckFailed(f"{path} is not JSON ({exc}): the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupCheckFailed(f"{path} is not a {FORMAT} manifest")
    return manifest, hashlib.sha256(data).hexdigest()


def blob_path(root: Path, key: str) -> Path:
    return root / key[:2] / key[2:4] / key


def check_snapshot(snapshot: Path, manifest: dict[str, Any]) -> list[str]:
    """Every problem of the snapshot's files and blobs against its manifest."""
    problems: list[str] = []
    for name, meta in sorted(manifest.get("files", {}).items()):
        path = snapshot / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != meta["size"]:
            problems.append(
                f"{name} has {path.stat().st_size} bytes, the manifest says {meta['size']}"
            )
        elif sha256_file(path) != meta["sha256"]:
            problems.append(f"{name} does not match its SHA-256 in the manifest (damaged)")
    for key, size in sorted(manifest.get("blobs", {}).get("keys", {}).items()):
        path = blob_path(snapshot / BLOBS, key)
        if not path.is_file():
            problems.append(f"stored original {key} is missing")
        elif path.stat().st_size != size or sha256_file(path) != key:
            problems.append(f"stored original {key} does not hash to its key (damaged)")
    return problems
