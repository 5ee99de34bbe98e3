"""Where incident reports live: `[ledger] incidents` (default var/incidents), a private
directory (0700) of `<id>.json` (the signed report) and `<id>.tsr` (its time-stamp),
each 0600, written whole (temporary file, fsync, rename, directory fsync).

An id is the UTC creation time and 8 random hex digits, `20261207T101500Z-1a2b3c4d`:
ids sort by time, and the strict pattern is the only thing a URL may name, so no path
built from a request ever leaves the directory. The .tsr is written before the .json:
a listed report always has its time-stamp.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tsa_server.incident import IncidentError
from tsa_server.issuance.publisher import write_durably

ID_PATTERN = r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}"
_ID = re.compile(ID_PATTERN)
_NAME = re.compile(rf"({ID_PATTERN})\.(json|tsr)")
#: The largest report file served or verified (a capped report stays far below it).
MAX_REPORT_BYTES = 256 * 1024 * 1024
MAX_TSR_BYTES = 64 * 1024
CONTENT_TYPES = {"json": "application/json", "tsr": "application/timestamp-reply"}
NAME_RULE = (
    "an incident file is <id>.json or <id>.tsr, the id being the UTC time and 8 hex "
    "digits, e.g. 20261207T101500Z-1a2b3c4d.json"
)


def new_id(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def is_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


def parse_name(name: str) -> tuple[str, str]:
    """(id, "json" or "tsr") of a served file name; IncidentError otherwise."""
    found = _NAME.fullmatch(name)
    if found is None:
        raise IncidentError(NAME_RULE)
    return found.group(1), found.group(2)


@dataclass(frozen=True)
class Written:
    report: Path
    timestamp: Path


def write_report(directory: Path, report_id: str, report: bytes, tsr: bytes) -> Written:
    """Write the time-stamp, then the report; refuses to replace an existing report."""
    if not is_id(report_id):
        raise IncidentError(f"not an incident id: {report_id!r}")
    paths = Written(directory / f"{report_id}.json", directory / f"{report_id}.tsr")
    if paths.report.exists() or paths.timestamp.exists():
        raise IncidentError(f"incident report {report_id} exists already")
    write_durably(paths.timestamp, tsr)
    write_durably(paths.report, report)
    return paths


@dataclass(frozen=True)
class Listed:
    id: str
    report_bytes: int


def list_reports(directory: Path, limit: int = 1000) -> list[Listed]:
    """The published reports (those with both files), newest first, at most `limit`."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    present = set(names)
    found: list[Listed] = []
    for name in sorted(names, reverse=True):
        if not name.endswith(".json") or not is_id(name[:-5]):
            continue
        if f"{name[:-5]}.tsr" not in present:
            continue
        try:
            size = (directory / name).stat().st_size
        except FileNotFoundError:
            continue
        found.append(Listed(name[:-5], size))
        if len(found) >= limit:
            break
    return found


def served_file(directory: Path, name: str) -> tuple[Path, str, int] | None:
    """(path, content type, size) of a published file, None when there is none;
    IncidentError for a name no report can have."""
    report_id, kind = parse_name(name)
    path = directory / f"{report_id}.{kind}"
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    limit = MAX_REPORT_BYTES if kind == "json" else MAX_TSR_BYTES
    if not path.is_file() or path.is_symlink() or info.st_size > limit:
        return None
    if not (directory / f"{report_id}.tsr").exists():
        return None  # a report is published with its time-stamp, never alone
    return path, CONTENT_TYPES[kind], info.st_size


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """A file of at most `limit` bytes; IncidentError naming it otherwise."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise IncidentError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise IncidentError(f"{what} {path} is larger than {limit} bytes")
    return data
