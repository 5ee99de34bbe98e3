"""Malformed HTTP requests are the client's mistake: one log line, not a traceback.

aiohttp's parser refuses a request it cannot parse (raw UTF-8 in the request target,
such as `curl ".../names/check?handle=星辰"`, a bad header line, a wrong
Content-Length...) with a 400 of its own, before any handler or middleware runs, and
logs it at ERROR with the full traceback on the `aiohttp.server` logger. Anyone could
fill the log that way. This filter turns such a record into one INFO line saying who
and what; the client still gets aiohttp's 400 naming the fault. Server faults (5xx)
keep their traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"
MAX_DETAIL = 120  # characters of the parser's message kept in the line


class MalformedRequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            detail = next((line.strip() for line in exc.message.splitlines() if line.strip()), "")
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "malformed HTTP request from %s refused (%d): %s"
            record.args = (remote, exc.code, detail[:MAX_DETAIL].rstrip(":"))
            record.exc_info = record.exc_text = None
            record.stack_info = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger (once)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
