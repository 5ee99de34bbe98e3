"""The file operations of backup and restore: every file they write is private to the
service user (0600 in 0700 directories, ledger/files.py), written under a temporary
name, fsync'd, renamed into place and its directory fsync'd, so a crash or a full disk
never leaves a half-written file under a final name.

SQLite databases are copied with SQLite's online backup API
(`sqlite3.Connection.backup`): one step over the whole file, inside one read
transaction of the source, which is a consistent snapshot even while the server (the
same SQLite library, WAL mode) keeps committing. The copy is switched to the rollback
journal so that it is one self-contained file whose SHA-256 is stable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

from ledger.files import FILE_MODE, ensure_private_file, make_private_dirs

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.backup-tmp")


def install(temp: Path, path: Path) -> None:
    """Rename the fsync'd ``temp`` to ``path`` and make the rename durable."""
    fsync_file(temp)
    os.replace(temp, path)
    fsync_dir(path.parent)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of the live SQLite database ``source`` at ``target``."""
    make_private_dirs(target.parent)
    temp = temporary_name(target)
    temp.unlink(missing_ok=True)
    ensure_private_file(temp)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 10000")
        dst = sqlite3.connect(temp)
        try:
            src.backup(dst)  # pages=-1: the whole file in one step, one read transaction
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    install(temp, target)


def copy_file(source: Path, target: Path, mode: int = FILE_MODE) -> str:
    """Copy ``source`` to ``target`` durably with ``mode``; the copy's SHA-256."""
    make_private_dirs(target.parent)
    temp = temporary_name(target)
    temp.unlink(missing_ok=True)
    digest = hashlib.sha256()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with open(source, "rb") as reader, os.fdopen(fd, "wb", closefd=False) as writer:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    install(temp, target)
    return digest.hexdigest()


def move_aside(path: Path, suffix: str) -> Path | None:
    """Rename ``path`` (a file or directory) to ``path<suffix>``; None when it is absent."""
    if not path.exists() and not path.is_symlink():
        return None
    aside = path.with_name(path.name + suffix)
    os.replace(path, aside)
    fsync_dir(path.parent)
    return aside


def sqlite_family(path: Path) -> list[Path]:
    """A SQLite file and what lives beside it: its WAL and shared memory, and the
    ledger's derived lookup database (sqlite_lookup.py) with its own."""
    names = [path.name, path.name + ".lookup"]
    return [path.with_name(n + s) for n in names for s in ("", "-wal", "-shm", "-journal")]


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
