"""The stored originals, copied incrementally: blobs are content-addressed (their key
is the SHA-256 of their bytes, evidence/blobs.py) and never change once installed, so a
blob already in the previous snapshot under the same key and size is hard-linked into
the new one instead of copied again. Each snapshot stays complete on its own (deleting
an old snapshot frees only what no other snapshot links), and a second backup of an
unchanged store copies no byte of any original.

A blob copied is hashed on the way: one whose bytes do not hash to its key is a damaged
original in the live store, reported and not copied. Copies go to a temporary name,
are fsync'd, made read-only and renamed into place.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ledger.files import make_private_dirs
from tsa_server.backup.files import copy_file, fsync_dir
from tsa_server.backup.manifest import blob_path

_KEY = re.compile(r"[0-9a-f]{64}")
_PAIR = re.compile(r"[0-9a-f]{2}")
BLOB_MODE = 0o400


@dataclass
class BlobCopy:
    keys: dict[str, int] = field(default_factory=dict)  # key -> size
    copied: int = 0
    linked: int = 0
    copied_bytes: int = 0
    damaged: list[str] = field(default_factory=list)  # live blobs not matching their key
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "count": len(self.keys),
            "bytes": sum(self.keys.values()),
            "copied": self.copied,
            "copied_bytes": self.copied_bytes,
            "linked": self.linked,
            "keys": dict(sorted(self.keys.items())),
        }


def live_keys(root: Path) -> Iterator[tuple[str, Path]]:
    """The (key, path) of every blob installed under ``root`` (tmp/ is not a blob)."""
    if not root.is_dir():
        return
    for first in sorted(os.scandir(root), key=lambda e: e.name):
        if not (first.is_dir(follow_symlinks=False) and _PAIR.fullmatch(first.name)):
            continue
        for second in sorted(os.scandir(first.path), key=lambda e: e.name):
            if not (second.is_dir(follow_symlinks=False) and _PAIR.fullmatch(second.name)):
                continue
            for blob in sorted(os.scandir(second.path), key=lambda e: e.name):
                name = blob.name
                if _KEY.fullmatch(name) and name[:4] == first.name + second.name:
                    if blob.is_file(follow_symlinks=False):
                        yield name, Path(blob.path)


class BlobCopier:
    """Copies blobs from a live store into a snapshot's blob directory, linking those
    ``previous`` (an earlier snapshot's blob directory) already holds."""

    def __init__(self, target: Path, previous: Path | None) -> None:
        self.target = target
        self.previous = previous
        self.result = BlobCopy()
        self._dirs: set[Path] = set()
        make_private_dirs(target)

    def copy_all(self, source: Path) -> BlobCopy:
        for key, path in live_keys(source):
            self.copy_one(key, path)
        return self.result

    def copy_one(self, key: str, path: Path) -> bool:
        """Copy (or link) one live blob; False if it vanished or is damaged."""
        target = blob_path(self.target, key)
        if key in self.result.keys and target.exists():
            return True
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False  # deleted since listed: no item references it any more
        make_private_dirs(target.parent)
        self._dirs.update((target.parent, target.parent.parent))
        if self._link(key, size, target):
            self.result.linked += 1
        else:
            try:
                digest = copy_file(path, target, BLOB_MODE)
            except FileNotFoundError:
                return False
            if digest != key:
                target.unlink()
                self.result.damaged.append(key)
                return False
            self.result.copied += 1
            self.result.copied_bytes += size
        self.result.keys[key] = size
        return True

    def _link(self, key: str, size: int, target: Path) -> bool:
        if self.previous is None:
            return False
        earlier = blob_path(self.previous, key)
        try:
            if earlier.stat().st_size != size:
                return False
            target.unlink(missing_ok=True)
            os.link(earlier, target)
        except OSError:
            return False
        return True

    def complete_references(self, evidence_copy: Path, source: Path) -> None:
        """Every original the copied evidence database refers to must be in the
        snapshot: one installed after the blob directory was listed is copied now; one
        the live store lacks too is reported (an original purged or lost before)."""
        if not evidence_copy.is_file():
            return
        conn = sqlite3.connect(f"file:{evidence_copy}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT DISTINCT blob_key FROM items WHERE blob_key IS NOT NULL"
            ).fetchall()
        except sqlite3.OperationalError:
            rows = []  # no items table: an evidence database never used
        finally:
            conn.close()
        for (key,) in rows:
            if not isinstance(key, str) or not _KEY.fullmatch(key) or key in self.result.keys:
                continue
            if not self.copy_one(key, blob_path(source, key)):
                self.result.warnings.append(
                    f"stored original {key} is referenced by the evidence database but "
                    "absent from the live blob store (purged or lost before this backup)"
                )

    def finish(self) -> None:
        for directory in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(directory)
        fsync_dir(self.target)
