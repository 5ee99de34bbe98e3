"""The key schedule: which signing key (and certificate chain) signs from which instant.

A small private JSON file (`[certificates] key_schedule`, default `key-schedule.json`
beside the chain, mode 0600) that `tsa keys import-chain --label` and `tsa keys
activate` write and the server reads (at start, every couple of seconds and on SIGHUP):

    {"version": 1, "keys": [{"label": "tsa-2027", "chain": "tsa-2027-chain.pem",
      "certificate_sha256": "...", "not_before": "...Z", "not_after": "...Z",
      "activate_at": "2027-01-01T00:00:00.000Z" | null}, ...]}

`chain` is a file name in the schedule's directory. At an instant t the active key is
the entry with the latest `activate_at` at or before t; before any activation it is the
configuration's `[pkcs11] key_label` with `[certificates] chain` (the initial key).
Instants are whole milliseconds (genTimes are), in UTC.

Writers hold `<schedule>.lock` (flock) around read-modify-write and replace the file
atomically; the reader refuses a file another account owns or may write.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tsa_server.errors import ConfigError

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_BYTES = 1 << 20


class ScheduleError(ConfigError):
    """The key schedule cannot be read, or a change to it is refused."""


def check_label(label: str) -> str:
    if not _LABEL.fullmatch(label):
        raise ScheduleError(
            f"key label {label!r}: 1-64 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit"
        )
    return label


def to_ms(instant: datetime) -> datetime:
    """`instant` in UTC, rounded up to a whole millisecond."""
    instant = instant.astimezone(UTC)
    extra = instant.microsecond % 1000
    return instant + timedelta(microseconds=1000 - extra) if extra else instant


def text_of(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with a zone (or 'Z'); ScheduleError otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(f"not an ISO 8601 instant: {text!r}") from None
    if value.tzinfo is None:
        raise ScheduleError(f"{text!r} has no time zone: add 'Z' for UTC")
    return value.astimezone(UTC)


def add_months(start: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (the month's last day when
    it is shorter)."""
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class Retirement:
    """When a key stops signing, and why (the earlier of its usage period and expiry)."""

    at: datetime
    usage_end: datetime
    not_after: datetime

    @property
    def text(self) -> str:
        if self.usage_end < self.not_after:
            return f"the signing key's usage period ended at {text_of(self.usage_end)}"
        return f"the TSA certificate expired at {text_of(self.not_after)}"

    @property
    def cause(self) -> str:
        return "usage period end" if self.usage_end < self.not_after else "certificate expiry"


def retirement(not_before: datetime, not_after: datetime, usage_months: int) -> Retirement:
    usage_end = add_months(not_before, usage_months)
    return Retirement(min(usage_end, not_after), usage_end, not_after)


@dataclass(frozen=True)
class ScheduledKey:
    label: str
    chain: str  # file name in the schedule's directory
    certificate_sha256: str
    not_before: datetime
    not_after: datetime
    activate_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "chain": self.chain,
            "certificate_sha256": self.certificate_sha256,
            "not_before": text_of(self.not_before),
            "not_after": text_of(self.not_after),
            "activate_at": text_of(self.activate_at) if self.activate_at else None,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ScheduledKey:
        label, chain = check_label(item["label"]), item["chain"]
        if not isinstance(chain, str) or Path(chain).name != chain or chain.startswith("."):
            raise ScheduleError(f"key {label!r}: chain must be a file name, not {chain!r}")
        at = item.get("activate_at")
        return cls(
            label,
            chain,
            str(item["certificate_sha256"]),
            parse_instant(item["not_before"]),
            parse_instant(item["not_after"]),
            parse_instant(at) if at else None,
        )


@dataclass(frozen=True)
class KeySchedule:
    keys: tuple[ScheduledKey, ...] = ()

    def get(self, label: str) -> ScheduledKey | None:
        return next((k for k in self.keys if k.label == label), None)

    def activations(self) -> list[ScheduledKey]:
        """Keys with an activation instant, earliest first."""
        timed = [k for k in self.keys if k.activate_at is not None]
        return sorted(timed, key=lambda k: (k.activate_at, k.label))

    def active_at(self, instant: datetime) -> ScheduledKey | None:
        """The key the schedule makes active at `instant` (None: the initial key)."""
        due = [k for k in self.activations() if k.activate_at and k.activate_at <= instant]
        return due[-1] if due else None

    def next_after(self, instant: datetime) -> ScheduledKey | None:
        later = [k for k in self.activations() if k.activate_at and k.activate_at > instant]
        return later[0] if later else None

    def with_key(self, key: ScheduledKey) -> KeySchedule:
        others = tuple(k for k in self.keys if k.label != key.label)
        return KeySchedule((*others, key))

    def activated(self, label: str, at: datetime) -> KeySchedule:
        key = self.get(label)
        if key is None:
            raise ScheduleError(f"key {label!r} is not in the schedule")
        return self.with_key(replace(key, activate_at=to_ms(at)))

    def chain_path(self, schedule_path: Path, key: ScheduledKey) -> Path:
        return schedule_path.parent / key.chain


def chain_file_name(label: str) -> str:
    return f"{check_label(label)}-chain.pem"


def load(path: Path) -> KeySchedule:
    """The schedule in `path` (empty when there is none); ScheduleError when it is not
    one, or another account could have written it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return KeySchedule()
    except OSError as exc:
        raise ScheduleError(f"key schedule {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        raise ScheduleError(f"key schedule {path}: not a regular file of the service user")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ScheduleError(f"key schedule {path}: writable by other users (chmod 600)")
    try:
        data = json.loads(path.read_bytes()[:_MAX_BYTES])
        if data.get("version") != 1:
            raise ValueError("unknown version")
        return KeySchedule(tuple(ScheduledKey.from_json(k) for k in data["keys"]))
    except ScheduleError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ScheduleError(f"key schedule {path} is not valid: {exc}") from None


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0600, durable on return."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def save(path: Path, schedule: KeySchedule) -> None:
    body = {"version": 1, "keys": [k.as_json() for k in schedule.keys]}
    write_private(path, json.dumps(body, indent=1).encode() + b"\n")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the schedule's lock file (one writer at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
