"""The checkpoint directories ([ledger] checkpoint_dir and ops_checkpoint_dir): the
signed checkpoints published outside the databases, which the rollback tripwire
(issuance/publisher.py `check_rollback`) compares each ledger with at start-up.

A directory is copied *before* its ledger: the publisher writes the files before it
archives the checkpoint in the ledger, so every file copied names a size the ledger
copied afterwards holds. A checkpoint published between the two copies is in the
ledger's archive but not in the copied directory; `complete_from_archive` writes it
from the archive (the files are the archived signed notes, byte for byte), so that the
restored directory is never behind the restored ledger's archive, which the tripwire
would take for a lost directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from ledger.checkpoint import Checkpoint
from ledger.errors import LedgerError
from ledger.files import make_private_dirs
from ledger.store.base import Reader
from tsa_server.backup.files import copy_file, fsync_dir, sha256_file
from tsa_server.issuance.publisher import write_durably

LATEST = "checkpoint"
ARCHIVE = "checkpoints"
_SIZE = re.compile(r"0|[1-9][0-9]*")


def checkpoint_files(directory: Path) -> list[str]:
    """The published files of a checkpoint directory, relative to it (no temporaries)."""
    names = [LATEST] if (directory / LATEST).is_file() else []
    archive = directory / ARCHIVE
    if archive.is_dir():
        sizes = sorted(int(p.name) for p in archive.iterdir() if _SIZE.fullmatch(p.name))
        names += [f"{ARCHIVE}/{size}" for size in sizes]
    return names


def copy_directory(source: Path, target: Path) -> None:
    """Copy every published checkpoint file of ``source`` to ``target``."""
    make_private_dirs(target / ARCHIVE)
    for name in checkpoint_files(source):
        try:
            copy_file(source / name, target / name)
        except FileNotFoundError:
            continue  # never: published files are not deleted; tolerate it anyway


def complete_from_archive(target: Path, ledger: Reader) -> None:
    """Write the ledger copy's archived checkpoints the copied directory lacks, and make
    ``checkpoint`` the latest of all."""
    make_private_dirs(target / ARCHIVE)
    for signed in ledger.checkpoints():
        path = target / ARCHIVE / str(signed.size)
        if not path.exists():
            write_durably(path, signed.note.encode())
    latest = latest_size(target)
    archived = ledger.latest_checkpoint()
    if archived is not None and (latest is None or archived.size > latest):
        write_durably(target / LATEST, archived.note.encode())
    fsync_dir(target)


def parse_note(path: Path) -> Checkpoint:
    """The checkpoint body of a signed note file (its signatures are the audit's)."""
    try:
        return Checkpoint.parse(path.read_text().split("\n\n", 1)[0] + "\n")
    except (LedgerError, UnicodeDecodeError, ValueError) as exc:
        raise LedgerError(f"{path} is not a checkpoint note: {exc}") from None


def latest_size(directory: Path) -> int | None:
    path = directory / LATEST
    return parse_note(path).size if path.is_file() else None


def check_directory(directory: Path, ledger: Reader, origin: str) -> list[str]:
    """Every checkpoint file of ``directory`` must name ``origin``, a size the ledger
    holds and the ledger's root at that size: what the tripwire will check."""
    problems = []
    size = ledger.size()
    for name in checkpoint_files(directory):
        try:
            checkpoint = parse_note(directory / name)
        except LedgerError as exc:
            problems.append(str(exc))
            continue
        if checkpoint.origin != origin:
            problems.append(f"{name}: origin {checkpoint.origin!r} is not {origin!r}")
        elif checkpoint.size > size:
            problems.append(f"{name}: checkpoint {checkpoint.size} is beyond the {size} entries")
        elif ledger.root(checkpoint.size) != checkpoint.root:
            problems.append(f"{name}: the ledger's root at {checkpoint.size} differs")
    archived = ledger.latest_checkpoint()
    if archived is not None and not (directory / LATEST).is_file():
        problems.append(f"no {LATEST} file although the ledger archived checkpoint {archived.size}")
    return problems


def describe(directory: Path, prefix: str) -> dict[str, dict[str, object]]:
    """Manifest entries (size, SHA-256) of the directory's files, named under ``prefix``."""
    return {
        f"{prefix}/{name}": {
            "size": (directory / name).stat().st_size,
            "sha256": sha256_file(directory / name),
        }
        for name in checkpoint_files(directory)
    }
