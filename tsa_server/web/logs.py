"""The server's log lines ([logging] format): human text by default, or one JSON object
per line for a log shipper; each line written while a request is handled carries its
request id, which the response echoes in `X-Request-Id` (web/observe.py assigns it).

No secret reaches a line: API keys (`tsa_<id>_<secret>`) and bearer credentials are
masked in every message and traceback, whatever logger wrote them; the PIN and the TLS
key are never logged in the first place. Request lines name the path, never its query
string, and are cut at a bound.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

#: The id of the request being handled, in the task handling it ("" outside requests).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

#: Fields a request line adds (logger "tsa.access"); they become JSON members.
REQUEST_FIELDS = ("method", "route", "path", "status", "duration_ms", "remote")

_SECRETS = (
    (re.compile(r"\btsa_([0-9A-Za-z]{1,64})_[0-9A-Za-z]{8,}"), r"tsa_\1_…"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;\"']+"), r"\1 …"),
)
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    """`text` with API-key secrets and bearer or basic credentials masked."""
    if "tsa_" not in text and "earer" not in text and "asic" not in text:
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (`record.request_id`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """The default: `time LEVEL logger: message [request id]`, secrets masked."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", "")
        if request_id:
            first, sep, rest = line.partition("\n")
            line = f"{first} [{request_id}]{sep}{rest}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the
    request id and a request line's fields when there are, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            entry["request_id"] = request_id
        for name in REQUEST_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, fmt: str = "text") -> None:
    """Send every logger's records to stderr in `fmt` ("text" or "json") at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
