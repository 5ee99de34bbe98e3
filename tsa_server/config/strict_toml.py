"""Strict reading of policy TOML files (conf/names.toml, conf/pricing.toml): every key
must be known and of the right type, and local date-times are Beijing time (G-1).

Each policy raises its own ConfigError subclass, so the reader takes it as a parameter.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from tsa_server.clock.beijing import BEIJING
from tsa_server.errors import ConfigError


def load_toml(path: Path, error: type[ConfigError]) -> dict[str, Any]:
    """The parsed file; an unreadable or malformed file is `error` (fail closed)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: {exc}") from exc


class StrictTable:
    """A TOML table read strictly: every key must be taken, with the right type."""

    def __init__(self, data: Any, where: str, error: type[ConfigError]):
        if not isinstance(data, dict):
            raise error(f"{where}: expected a table")
        self.data, self.where, self.error, self.used = data, where, error, set[str]()

    def take(self, key: str, kinds: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        allowed = kinds if isinstance(kinds, tuple) else (kinds,)
        # TOML booleans are ints to Python: accept one only where bool is asked for.
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, kinds):
            raise self.error(f"{self.where}.{key}: wrong type {type(value).__name__}")
        return value

    def table(self, key: str) -> StrictTable:
        return StrictTable(self.take(key, dict, {}), f"{self.where}.{key}", self.error)

    def integers(self, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.take(key, list, list(default))
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
            raise self.error(f"{self.where}.{key}: expected a list of integers")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(f"{self.where}: unknown keys {unknown}")


def beijing_instant(value: Any, where: str, error: type[ConfigError]) -> datetime:
    """Offset date-times as written; local date-times and dates are Beijing time (G-1)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=BEIJING)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=BEIJING)
    raise error(f"{where}: expected a date-time")
