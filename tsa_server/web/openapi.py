"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document of the /api/v1 endpoints,
composed from what each area declares beside its handlers (web/api.py `Described`)."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from aiohttp import web

from tsa_server.web import accounts, evidence, members, metrics, policy
from tsa_server.web.api import COMMON_SCHEMAS, Described, body_models, components
from tsa_server.web.evidence import RATE_LIMITED
from tsa_server.web.evidence import files as evidence_files
from tsa_server.web.names import openapi as names_openapi

_AREAS: tuple[Described, ...] = (
    accounts.DESCRIBED,
    members.DESCRIBED,
    evidence.DESCRIBED,
    evidence_files.DESCRIBED,
    names_openapi.DESCRIBED,
    metrics.DESCRIBED,
    policy.DESCRIBED,
)


def build_document() -> dict[str, Any]:
    """The whole document, built when first asked for and never changed."""
    schemas: dict[str, Any] = dict(COMMON_SCHEMAS)
    paths: dict[str, Any] = {}
    for area in _AREAS:
        schemas.update(area.schemas)
        schemas.update(components(body_models(area.operations)))
        for operation in area.operations:
            paths.setdefault(operation.path, {})[operation.method] = operation.document()
        paths.update(copy.deepcopy(dict(area.paths)))
    # REC-10: every authenticated operation may be rate limited (web/ratelimit.py).
    for methods in paths.values():
        for operation in methods.values():
            if operation.get("security"):
                operation["responses"].setdefault("429", RATE_LIMITED)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TSA accounts and trade-name (字号) registry API",
            "version": "1",
            "description": "Every accepted registry operation is an event time-stamped by "
            "this TSA (RFC 3161) and appended to the operations log.",
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "tsa_<id>_<secret>"}
            },
            "schemas": schemas,
        },
        "paths": paths,
    }


@functools.cache
def _served() -> bytes:
    return json.dumps(build_document()).encode()


async def document(request: web.Request) -> web.Response:
    return web.Response(body=_served(), content_type="application/json")
