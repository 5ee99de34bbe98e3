"""`@page`: what every page handler is wrapped in. A refused CSRF token is a 403 page; a
domain error (accounts, evidence...) is the status web/errors.py gives it, shown as a
page with its reason; a malformed request is a 400 page. Never a traceback: anything
else goes on to the server's errors middleware (logged, 500)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from tsa_server.web.errors import DOMAIN_ERRORS, BadRequest, error_response
from tsa_server.web.pages.render import error_page, language, translate
from tsa_server.web.pages.security import CsrfRefused

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSRF_MESSAGE = (
    "This form was not sent from this site's page, or the page is too old. "
    "Reload the page and try again."
)


def page(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except CsrfRefused:
            return error_page(request, 403, translate(language(request), CSRF_MESSAGE))
        except BadRequest as exc:
            return error_page(request, exc.status, exc.reason)
        except DOMAIN_ERRORS as exc:
            return error_page(request, error_response(exc).status, str(exc))
        except web.HTTPNotFound:
            return error_page(request, 404, translate(language(request), "Not found."))

    return wrapped
