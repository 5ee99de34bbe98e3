"""State files private to the service user: created 0600 in directories made 0700.

Ledgers, their side databases and checkpoints, and every other state file the server
writes hold what only the operator should read (customers' imprints, contenders'
metrics, key hashes). SQLite gives a database's -wal and -shm files the database
file's mode, so creating the database file 0600 covers them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents 0700 (existing ones are left alone)."""
    directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it is missing; take group and other bits off
    an existing one (files made by earlier versions were 0644). A missing directory is
    an error (FileNotFoundError), never created here: a mistyped ledger path must not
    start a new ledger somewhere else."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        return
    except FileExistsError:
        pass
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def open_private(path: Path, flags: int) -> int:
    """os.open with the private mode (for files written whole, like checkpoints)."""
    return os.open(path, flags, FILE_MODE)
