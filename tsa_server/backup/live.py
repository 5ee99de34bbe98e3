"""What the installation a backup is restored into has already published, and how far
behind it the backup is.

For each log: the published checkpoint file of its checkpoint directory (which outside
parties may have fetched), the checkpoint archive and size of the live ledger when its
file is still readable, and for the token log the operations log's record of its last
checkpoint (the rollback tripwire's witness). The backup must be a prefix of all of them
(the same root at every size it holds, else it is another installation's), and
whatever they hold beyond it would be lost by the restore: the entries that were
published (in a checkpoint) and those issued after the last checkpoint.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import LedgerError
from ledger.store.sqlite import SqliteReader
from tsa_server.backup.checkpoints import ARCHIVE, LATEST, checkpoint_files, parse_note
from tsa_server.backup.manifest import BackupError


@dataclass
class LiveLog:
    """The live state of one log (what the target still has of it)."""

    name: str  # "tokens" or "ops"
    ledger_size: int | None = None  # None: no readable ledger file
    epoch: int | None = None
    published: list[tuple[int, bytes, str]] = field(default_factory=list)  # size, root, where
    copy_size: int = 0

    @property
    def published_size(self) -> int:
        return max((size for size, _, _ in self.published), default=0)

    @property
    def known_size(self) -> int:
        return max(self.published_size, self.ledger_size or 0)

    @property
    def lost(self) -> int:
        return max(0, self.known_size - self.copy_size)

    def record(self) -> dict[str, Any] | None:
        """The lost range as the operations log's restore event lists it."""
        if not self.lost:
            return None
        return {
            "from_index": self.copy_size,
            "to_index": self.known_size - 1,
            "entries": self.lost,
            "published_in_checkpoints": sorted(
                {size for size, _, _ in self.published if size > self.copy_size}
            ),
            "last_published_checkpoint": self.published_size or None,
            "live_ledger_size": self.ledger_size,
        }


def _ledger(path: Path, log: LiveLog, copy: SqliteReader) -> None:
    if not path.is_file():
        return
    try:
        reader = SqliteReader(path)
        try:
            log.ledger_size = reader.size()
            for checkpoint in reader.checkpoints():
                log.published.append((checkpoint.size, checkpoint.root, f"the archive of {path}"))
            common = min(log.ledger_size, log.copy_size)
            if reader.root(common) != copy.root(common):
                raise BackupError(
                    f"the backup's {log.name} log and the live {path} differ in their first "
                    f"{common} entries: the backup is not of this installation; refusing"
                )
        finally:
            reader.close()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            log.epoch = int(conn.execute("SELECT epoch FROM seq WHERE id = 1").fetchone()[0])
        finally:
            conn.close()
    except (sqlite3.Error, TypeError) as exc:
        raise BackupError(
            f"cannot read the live {log.name} log {path} ({exc}): move it away first if it is "
            "damaged beyond reading (its state then counts as unknown)"
        ) from None


def _directory(directory: Path, log: LiveLog) -> None:
    for name in checkpoint_files(directory):
        try:
            checkpoint = parse_note(directory / name)
        except LedgerError:
            continue  # a damaged file names no size; the others still count
        where = "the published checkpoint" if name == LATEST else f"the published {ARCHIVE}/"
        log.published.append((checkpoint.size, checkpoint.root, f"{where} {directory / name}"))


def ops_witness(path: Path, origin: str) -> tuple[int, bytes] | None:
    """The last token-log checkpoint the live operations log recorded."""
    if not path.is_file():
        return None
    try:
        reader = SqliteReader(path)
        try:
            found = None
            for entry in reader.entries(max(0, reader.size() - 10_000)):
                if b'"kind":"checkpoint"' in entry.token:
                    event = json.loads(entry.token)
                    if event.get("origin") == origin:
                        found = (int(event["size"]), bytes.fromhex(event["root"]))
            return found
        finally:
            reader.close()
    except (sqlite3.Error, ValueError, KeyError):
        return None


def assess(
    name: str,
    ledger: Path,
    directory: Path,
    copy: SqliteReader,
    witness: tuple[int, bytes] | None = None,
) -> LiveLog:
    """The live state of log ``name`` against its copy; BackupError when the copy is
    not a prefix of what the installation holds or published."""
    log = LiveLog(name, copy_size=copy.size())
    _ledger(ledger, log, copy)
    _directory(directory, log)
    if witness is not None:
        log.published.append((*witness, "the operations log's last checkpoint record"))
    for size, root, where in log.published:
        if size <= log.copy_size and copy.root(size) != root:
            raise BackupError(
                f"the backup's {name} log differs from {where} at size {size}: the backup is "
                "not of this installation's ledger; refusing"
            )
    return log
