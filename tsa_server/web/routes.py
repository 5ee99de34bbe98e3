"""The only place URLs are spelled."""

from __future__ import annotations

from aiohttp import web

from tsa_server.web import handlers, verify


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.post("/", handlers.timestamp),
            web.post("/tsr", handlers.timestamp),
            web.get("/", handlers.landing),
            web.get("/certs", handlers.certs),
            web.get("/healthz", handlers.healthz),
            web.get("/readyz", handlers.readyz),
            web.get("/tokens/{serial}", handlers.token_by_serial),
            web.post("/verify", verify.verify),
        ]
    )
