"""Events that command-line tools leave for the server to record in the operations log.

The operations log has one writer, the server (it holds the store's lease or `.lock`).
A tool run beside it (`tsa keys ...`, `tsa incident ...`) that must leave an event in
that log posts it here instead: one JSON file per event in `[ledger] ops_inbox`, written
to a temporary name, fsync'd and renamed, so a file is whole or absent. The server
records the waiting events when it starts and every few seconds while it runs, oldest
first, then deletes each file: an event is recorded at least once (a crash between the
append and the delete records it again on the next pass; its `inbox_id` tells the two
apart). A tool whose server is stopped leaves its events for the next start.

Only files that belong to the service user and that no one else may write are taken:
the inbox is private (0700), and a file planted by another account is refused and left
for the operator to look at, never recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tsa_server.issuance.opslog import OpsLog

log = logging.getLogger("tsa.opslog")

MAX_EVENT_BYTES = 64 * 1024
_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")
_RESERVED = frozenset({"kind", "time_ms", "posted_ms", "inbox_id"})


def post(inbox: Path, kind: str, **details: Any) -> str:
    """Leave one event for the server; returns its inbox id."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"not an event kind: {kind!r}")
    clash = _RESERVED & details.keys()
    if clash:
        raise ValueError(f"reserved event field(s): {', '.join(sorted(clash))}")
    # Nanoseconds order the events one tool posts within a millisecond (in milliseconds,
    # the random suffix ordered them).
    posted_ns = time.time_ns()
    posted_ms = posted_ns // 1_000_000
    inbox_id = f"{posted_ns:020d}-{secrets.token_hex(4)}"
    body = json.dumps({"kind": kind, "posted_ms": posted_ms, "details": details}).encode()
    if len(body) > MAX_EVENT_BYTES:
        raise ValueError(f"event of {len(body)} bytes, at most {MAX_EVENT_BYTES}")
    inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = inbox / f".{inbox_id}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, inbox / f"{inbox_id}.json")
    _sync_directory(inbox)
    return inbox_id


def drain(inbox: Path, ops: OpsLog) -> int:
    """Record every waiting event, oldest first; returns how many were recorded. An event
    the log cannot take now (a full disk) stays for the next pass."""
    if not inbox.is_dir():
        return 0
    recorded = 0
    for path in sorted(inbox.glob("*.json"), key=_posted_order):
        event = _read(path)
        if event is None:
            continue
        kind, posted_ms, details = event
        ops.record(kind, posted_ms=posted_ms, inbox_id=path.stem, **details)
        path.unlink()
        recorded += 1
    if recorded:
        _sync_directory(inbox)
    return recorded


def _posted_order(path: Path) -> tuple[int, str]:
    """When the event was posted, in ns: ids are `<ns, 20 digits>-<hex>`, or, posted by
    an earlier version, `<ms, 13 digits>-<hex>`."""
    prefix = path.stem.partition("-")[0]
    if not prefix.isdigit():
        return (0, path.name)
    return (int(prefix) * (1_000_000 if len(prefix) <= 13 else 1), path.name)


def _read(path: Path) -> tuple[str, int, dict[str, Any]] | None:
    """The event in `path`, or None (and the file set aside) when it is not one."""
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise ValueError("not a regular file of the service user")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ValueError("writable by other users")
        if info.st_size > MAX_EVENT_BYTES:
            raise ValueError(f"{info.st_size} bytes, at most {MAX_EVENT_BYTES}")
        event = json.loads(path.read_bytes())
        kind, posted_ms, details = event["kind"], event["posted_ms"], event["details"]
        if not (isinstance(kind, str) and _KIND.fullmatch(kind)):
            raise ValueError(f"not an event kind: {kind!r}")
        if not isinstance(posted_ms, int) or not isinstance(details, dict):
            raise ValueError("posted_ms and details missing")
        if _RESERVED & details.keys():
            raise ValueError("reserved event fields in details")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("operations inbox: %s refused and set aside: %s", path.name, exc)
        with contextlib.suppress(OSError):
            path.rename(path.with_suffix(".refused"))
        return None
    return kind, posted_ms, details


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def keep_draining(inbox: Path, ops: OpsLog, interval_s: float) -> AsyncIterator[None]:
    """The server's task: drain the inbox every `interval_s` seconds (off the event loop:
    each record is an fsync'd append), and once more at shutdown."""

    async def once() -> None:
        try:
            await asyncio.to_thread(drain, inbox, ops)
        except Exception as exc:  # noqa: BLE001 - the events wait for the next pass
            log.error("operations inbox not drained: %s", exc)

    async def loop() -> None:
        while True:
            await once()
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await once()
