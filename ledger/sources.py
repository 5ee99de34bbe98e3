"""Where an audit reads a log from: the SQLite file itself, or a C2SP tlog-tiles
prefix (the server's URL, or a directory mirroring it).

A tiles source yields the entries from the entry bundles and checks each bundle against
the level-0 hash tile it must hash to; its "stored" chain values are the replay itself,
and the chain is compared at the checkpoint's size with `<prefix>/chain/<size>`.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from asn1crypto import cms, tsp  # noqa: F401 - importing tsp registers TSTInfo with cms

from ledger.checkpoint import Checkpoint
from ledger.errors import LedgerError
from ledger.hashing import CHAIN_GENESIS, chain_hash, leaf_hash
from ledger.store.base import Entry, SignedCheckpoint
from ledger.tiles import CHECKPOINT_PAGE, TileId, decode_entry_bundle

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Fetch = Callable[[str], bytes]


class AuditSource(Protocol):
    """What `tsa-ledger audit` replays: a SQLite ledger file or a tlog-tiles prefix."""

    def size(self) -> int: ...

    def checkpoints(self) -> list[SignedCheckpoint]: ...

    def entries(
        self, tokens: bool = True, start: int = 0, head: bytes = CHAIN_GENESIS
    ) -> Iterator[Entry]:
        """Entries from `start` on (a chain continuing from `head`, where the source needs it)."""
        ...

    def stored_node(self, level: int, index: int) -> bytes | None:
        """The source's own hash of a complete node at a tile stratum, if it has one."""
        ...


def http_fetcher(prefix: str) -> Fetch:
    base = prefix.rstrip("/") + "/"

    def fetch(path: str) -> bytes:
        try:
            with urllib.request.urlopen(base + path, timeout=60) as reply:
                body: bytes = reply.read()
                return body
        except urllib.error.HTTPError as exc:
            raise LedgerError(f"{base + path}: HTTP {exc.code}") from None
        except OSError as exc:
            raise LedgerError(f"{base + path}: {exc}") from None

    return fetch


def directory_fetcher(root: Path) -> Fetch:
    def fetch(path: str) -> bytes:
        folder, _, query = path.partition("?")
        if folder.endswith("/"):  # a listing: the names in that directory, all at once
            if query:  # a later page of the server's listing: the first one held them all
                return b""
            folder_path = root / folder
            names = sorted(p.name for p in folder_path.iterdir()) if folder_path.is_dir() else []
            return "\n".join(names).encode()
        try:
            return (root / path).read_bytes()
        except OSError as exc:
            raise LedgerError(f"{root / path}: {exc.strerror}") from None

    return fetch


def _fields(token: bytes) -> tuple[int, int, str, bytes]:
    try:
        tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
        gen_ms = (tst["gen_time"].native - _EPOCH) // timedelta(milliseconds=1)
        imprint = tst["message_imprint"]
        return (
            tst["serial_number"].native,
            gen_ms,
            imprint["hash_algorithm"]["algorithm"].native,
            imprint["hashed_message"].native,
        )
    except Exception:  # noqa: BLE001 - an unparseable entry is reported by the audit
        return -1, 0, "", b""


class TileSource:
    """A published log read through its tiles; only what the latest checkpoint covers."""

    def __init__(self, fetch: Fetch):
        self._fetch = fetch
        self._tile_key: tuple[int, int, int] | None = None
        self._tile = b""
        self.note = fetch("checkpoint").decode("utf-8")
        self.checkpoint = Checkpoint.parse(self.note.split("\n\n", 1)[0] + "\n")

    def size(self) -> int:
        return self.checkpoint.size

    def checkpoints(self) -> list[SignedCheckpoint]:
        """Every archived checkpoint up to the latest (`checkpoints/` lists their sizes),
        each with its chain head; the audit checks every one against its replay."""
        sizes = sorted(set(self._archived_sizes()) | {self.checkpoint.size})
        found = []
        for size in sizes:
            if size > self.checkpoint.size:
                continue
            note = (
                self.note
                if size == self.checkpoint.size
                else (self._fetch(f"checkpoints/{size}").decode("utf-8"))
            )
            parsed = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n")
            head = bytes.fromhex(self._fetch(f"chain/{size}").decode().strip()) if size else None
            found.append(SignedCheckpoint(size, parsed.root, head or CHAIN_GENESIS, note))
        return found

    def _archived_sizes(self) -> Iterator[int]:
        """The `checkpoints/` listing, page after page (CHECKPOINT_PAGE sizes each)."""
        path = "checkpoints/"
        while True:
            page = [int(s) for s in self._fetch(path).decode().split() if s.isdigit()]
            yield from page
            if len(page) < CHECKPOINT_PAGE:
                return
            path = f"checkpoints/?after={page[-1]}"

    def stored_node(self, level: int, index: int) -> bytes | None:
        """A complete node from the published tile (full or partial) of level level/8."""
        tile_index, offset = index >> 8, index & 255
        width = min(256, (self.checkpoint.size >> level) - tile_index * 256)
        if offset >= width:
            return None  # not complete within the published tree
        key = (level, tile_index, width)
        if key != self._tile_key:
            self._tile = self._fetch(TileId(level // 8, tile_index, width).path)
            self._tile_key = key
        return self._tile[32 * offset : 32 * offset + 32]

    def entries(
        self, tokens: bool = True, start: int = 0, head: bytes = CHAIN_GENESIS
    ) -> Iterator[Entry]:
        """Entries from `start` on (the chain continuing from `head`)."""
        size, index = self.checkpoint.size, (start // 256) * 256
        for n in range(start // 256, (size + 255) // 256):
            width = min(256, size - n * 256)
            bundle = decode_entry_bundle(self._fetch(TileId(0, n, width, entries=True).path))
            hashes = self._fetch(TileId(0, n, width).path)
            if len(bundle) != width or len(hashes) != 32 * width:
                raise LedgerError(f"tile {n} is not {width} entries wide")
            for i, token in enumerate(bundle):
                if index < start:
                    index += 1
                    continue
                leaf = leaf_hash(token)
                # The level-0 tile is what the tree commits to: an entry that does not
                # hash to it is reported as a leaf-hash failure at its index.
                stored = hashes[32 * i : 32 * i + 32]
                head = chain_hash(head, leaf)
                serial, gen_ms, alg, imprint = (
                    _fields(token) if tokens else (index + 1, 0, "event", b"")
                )
                yield Entry(index, token, gen_ms, serial, alg, imprint, stored, head)
                index += 1
