"""What every request leaves behind, through the hook aiohttp already has for it: the
access logger, which the server calls once per response with the time it took (so no
middleware is added to the path of `/tsr`).

Per request: one latency observation and one counter increment on label children cached
by (route pattern, method). Routes are the route table's patterns, never the path itself;
a method outside the usual few is counted as "other".
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from tsa_server.metrics.instruments import UNMATCHED, HttpMetrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(request: BaseRequest) -> str:
    """The pattern of the route `request` matched, or "unmatched"."""
    if not isinstance(request, web.Request):
        return UNMATCHED  # a request aiohttp could not parse
    match = request._match_info  # None before routing (a parse error)
    resource = None if match is None else match.route.resource
    return UNMATCHED if resource is None else resource.canonical


def access_hook(http: HttpMetrics) -> type[AbstractAccessLogger]:
    """An access-logger class (aiohttp makes one per connection) feeding `http`."""

    class AccessHook(AbstractAccessLogger):
        def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
            method = request.method if request.method in _METHODS else "other"
            http.observe(route_of(request), method, response.status, time)

        @property
        def enabled(self) -> bool:
            return True

    return AccessHook


ACCESS_LOGGER = logging.getLogger("tsa.access")
