"""Where `tsa-ledger audit` and `tsa audit` read a log from: a SQLite ledger file, a
tlog-tiles URL, a directory mirroring one, or a TSA server's URL (the logs it lists at
`<url>/ledger/`), and what the source says about itself (token or operations log, its
published verifier key)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import click

from ledger.errors import LedgerError
from ledger.hashing import CHAIN_GENESIS
from ledger.sources import AuditSource, TileSource, directory_fetcher, http_fetcher
from ledger.store.base import Entry, Reader, SignedCheckpoint
from ledger.store.sqlite import SqliteReader


class SqliteSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: Reader = SqliteReader(path)

    def size(self) -> int:
        return self._reader.size()

    def checkpoints(self) -> list[SignedCheckpoint]:
        return self._reader.checkpoints()

    def entries(
        self, tokens: bool = True, start: int = 0, head: bytes = CHAIN_GENESIS
    ) -> Iterator[Entry]:
        return self._reader.entries(start)

    def stored_node(self, level: int, index: int) -> bytes | None:
        hashes = self._reader.tile_hashes(level // 8, index >> 8, (index & 255) + 1)
        return hashes[-32:] if len(hashes) == 32 * ((index & 255) + 1) else None


def open_source(source: str) -> AuditSource:
    """A SQLite ledger file, a tlog-tiles URL (http/https), or a directory mirroring one.
    A TSA server's own URL stands for its token log (`<url>/ledger/tokens/`)."""
    if source.startswith(("http://", "https://")):
        return TileSource(http_fetcher(log_url(source)))
    path = Path(source)
    if path.is_dir():
        return TileSource(directory_fetcher(path))
    if not path.is_file():
        raise click.ClickException(f"{source}: no such file, directory or URL")
    try:
        return SqliteSource(path)
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read {source} as a ledger: {exc}") from None


def log_url(source: str) -> str:
    """The tlog-tiles prefix SOURCE names: itself when it serves a checkpoint, else the
    token log of the TSA server at SOURCE."""
    base = source.rstrip("/") + "/"
    try:
        http_fetcher(base)("checkpoint")
        return base
    except LedgerError as exc:
        if base.endswith("/ledger/tokens/") or base.endswith("/ledger/ops/"):
            raise click.ClickException(f"cannot read the log at {base}: {exc}") from None
    tokens = base + "ledger/tokens/"
    try:
        http_fetcher(tokens)("checkpoint")
    except LedgerError as exc:
        raise click.ClickException(
            f"{source} is neither a log nor a TSA server ({exc}); give the server's URL, "
            "or a log's: <server>/ledger/tokens/ or <server>/ledger/ops/"
        ) from None
    return tokens


def listed_logs(source: str) -> list[str]:
    """The logs to audit for SOURCE: every log a TSA server lists at `<url>/ledger/`
    when SOURCE is a server's URL (each node's token and operations logs), else SOURCE
    itself (a log's URL, a file, a directory, or a server that lists no logs)."""
    base = source.rstrip("/") + "/"
    if not source.startswith(("http://", "https://")) or "/ledger/" in base:
        return [source]
    try:
        listing = json.loads(http_fetcher(base)("ledger/"))
        names = [str(entry["name"]) for entry in listing["logs"]]
    except (LedgerError, ValueError, KeyError, TypeError):
        return [source]
    return [f"{base}ledger/{name}/" for name in names] or [source]


def audit_each(source: str, vkey: str | None, resume: str | None) -> list[str]:
    """listed_logs(SOURCE), refusing the options that name one log's key or state for a
    TSA of several logs."""
    logs = listed_logs(source)
    if len(logs) > 1 and (vkey or resume):
        raise click.UsageError(
            f"{source} lists {len(logs)} logs: --vkey and --resume are about one log, "
            f"give its URL ({', '.join(logs)})"
        )
    return logs


def holds_tokens(source: AuditSource) -> bool:
    """Whether the log's entries are tokens (DER) rather than the operations log's events
    (JSON): its first entry tells. An empty log counts as a token log."""
    first = next(iter(source.entries(True, 0)), None)
    return first is None or first.token[:1] == b"\x30"


def published_vkey(source: str) -> str | None:
    """The note verifier key the log publishes beside its tiles, when there is one."""
    try:
        if source.startswith(("http://", "https://")):
            return http_fetcher(log_url(source))("vkey").decode().strip()
        if Path(source).is_dir():
            return directory_fetcher(Path(source))("vkey").decode().strip()
    except (LedgerError, UnicodeDecodeError):
        return None
    return None
