"""`GET /policy`: the TSA disclosure statement (ETSI EN 319 421 section 6.1, the PKI
disclosure statement of a TSA), generated from what the server is configured with and
the certificate it signs with: the policy OIDs, the accuracy it states at worst, the
hash algorithms it accepts, its signing key type and certificate, its clock sources,
how long tokens and records are kept, and whom to contact ([disclosure]).

It is built once, when the application starts (nothing on it changes while it runs),
and served as HTML (every configured text escaped) and as a PDF (`/policy.pdf`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tsa_server.web.api import Described
from tsa_server.web.disclosure import Statement, render_html, statement_of
from tsa_server.web.policy_pdf import render_pdf
from tsa_server.wiring import Services

POLICY_HTML = web.AppKey("policy_html", bytes)
POLICY = web.AppKey("policy_statement", Statement)
POLICY_PDF = web.AppKey("policy_pdf", dict)  # "pdf" -> bytes, drawn on first request
DESCRIBED = Described(
    paths={
        "/policy.pdf": {
            "get": {
                "summary": "The TSA disclosure statement as a PDF",
                "responses": {
                    "200": {
                        "description": "the same statement, A4",
                        "content": {"application/pdf": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/policy": {
            "get": {
                "summary": "The TSA disclosure statement (policy, accuracy, key, clock...)",
                "responses": {
                    "200": {
                        "description": "the statement, generated from the configuration",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
)


def setup(app: web.Application, services: Services) -> None:
    app[POLICY] = statement = statement_of(services)
    app[POLICY_HTML] = render_html(statement)
    app[POLICY_PDF] = {}


async def policy(request: web.Request) -> web.Response:
    """The disclosure statement, HTML."""
    return web.Response(body=request.app[POLICY_HTML], content_type="text/html", charset="utf-8")


async def policy_pdf(request: web.Request) -> web.Response:
    """The disclosure statement, PDF (drawn once, in a thread)."""
    cache = request.app[POLICY_PDF]
    pdf: bytes | None = cache.get("pdf")
    if pdf is None:
        pdf = cache["pdf"] = await asyncio.to_thread(render_pdf, request.app[POLICY])
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": 'inline; filename="tsa-disclosure-statement.pdf"'},
    )
