"""What every request leaves behind, through hooks aiohttp already has (so no middleware
is added to the path of `/tsr`):

- the request factory (`tag_requests`) gives each request an id: the client's
  `X-Request-Id` when it is a short token of safe characters, else a new one (process
  prefix and a counter, no randomness per request); it is set in the context the
  handler runs in, so every log line the request causes carries it (web/logs.py), and
  `echo_request_id` (an `on_response_prepare` signal) puts it in the response;
- the access logger (`access_hook`), which the server calls once per response with the
  time it took: one latency observation and one counter increment per request, on label
  children cached by (route pattern, method); and one log line for each answer of 400 or
  more ([logging] access: for every answer). A method outside the usual few is counted
  as "other"; routes are the route table's patterns, never the path itself.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from tsa_server.metrics.instruments import UNMATCHED, HttpMetrics
from tsa_server.web.logs import REQUEST_ID

REQUEST_ID_HEADER = "X-Request-Id"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MAX_PATH = 200
log = logging.getLogger("tsa.access")


def route_of(request: BaseRequest) -> str:
    """The pattern of the route `request` matched, or "unmatched"."""
    if not isinstance(request, web.Request):
        return UNMATCHED  # a request aiohttp could not parse
    match = request._match_info  # None before routing (a parse error)
    resource = None if match is None else match.route.resource
    return UNMATCHED if resource is None else resource.canonical


def tag_requests(server: web.Server) -> None:
    """Give every request of `server` an id (module doc); before connections arrive."""
    make = server.request_factory
    prefix = secrets.token_hex(4)
    counter = itertools.count(1)

    def factory(*args: Any) -> BaseRequest:
        request = make(*args)
        given = args[0].headers.get(REQUEST_ID_HEADER)
        if given is None or _CLIENT_ID.fullmatch(given) is None:
            given = f"{prefix}-{next(counter):x}"
        REQUEST_ID.set(given)
        return request

    server.request_factory = factory


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = REQUEST_ID.get()
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id


class Tally:
    """Responses completed so far (what a stop reports as finished)."""

    responses = 0


def access_hook(
    http: HttpMetrics, every_request: bool = False, tally: Tally | None = None
) -> type[AbstractAccessLogger]:
    """An access-logger class (aiohttp makes one per connection) feeding `http`, the
    request lines (module doc) and `tally`."""
    counts = tally or Tally()

    class AccessHook(AbstractAccessLogger):
        def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
            counts.responses += 1
            method = request.method if request.method in _METHODS else "other"
            route = route_of(request)
            status = response.status
            http.observe(route, method, status, time)
            # A request aiohttp could not parse has had its line (web/malformed.py).
            if (status >= 400 or every_request) and isinstance(request, web.Request):
                _request_line(request, method, route, status, time)

        @property
        def enabled(self) -> bool:
            return True

    return AccessHook


def _request_line(
    request: BaseRequest, method: str, route: str, status: int, seconds: float
) -> None:
    path = request.path
    if len(path) > _MAX_PATH:
        path = path[:_MAX_PATH] + "…"
    fields = {
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "remote": request.remote,
    }
    level = logging.WARNING if status >= 500 else logging.INFO
    log.log(level, "%s %s -> %d in %.1f ms", method, path, status, seconds * 1000, extra=fields)
