"""The published incident reports (tsa_server/incident/): `GET /incidents/` lists them,
`GET /incidents/<id>.json` serves a report and `GET /incidents/<id>.tsr` its time-stamp.

Public and read-only, as a publication under EN 319 421 OVR-7.13 must be. Only names of
the strict id pattern are ever joined to the directory (anything else is 400 with the
rule, an unknown id 404), files are streamed and bounded in size, and a report is
immutable once written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tsa_server.incident import IncidentError
from tsa_server.incident.files import list_reports, served_file
from tsa_server.wiring import Services

DIRECTORY = web.AppKey("incidents_dir", Path)
IMMUTABLE = "public, max-age=31536000, immutable"
LISTING_MAX_AGE = "public, max-age=30"


def setup(app: web.Application, services: Services) -> None:
    app[DIRECTORY] = services.config.ledger.incidents_dir


async def listing(request: web.Request) -> web.Response:
    """The reports, newest first: their ids, URLs and sizes."""
    found = await asyncio.to_thread(list_reports, request.app[DIRECTORY])
    body = {
        "incidents": [
            {
                "id": item.id,
                "report": f"/incidents/{item.id}.json",
                "timestamp": f"/incidents/{item.id}.tsr",
                "report_bytes": item.report_bytes,
            }
            for item in found
        ]
    }
    return web.json_response(body, headers={"Cache-Control": LISTING_MAX_AGE})


async def incident_file(request: web.Request) -> web.StreamResponse:
    """One report (`.json`) or its time-stamp (`.tsr`)."""
    name = request.match_info["name"]
    try:
        found = await asyncio.to_thread(served_file, request.app[DIRECTORY], name)
    except IncidentError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    if found is None:
        raise web.HTTPNotFound(text=f"no incident report {name}: GET /incidents/ lists them\n")
    path, content_type, _size = found
    return web.FileResponse(
        path,
        headers={
            "Content-Type": content_type,
            "Cache-Control": IMMUTABLE,
            "X-Content-Type-Options": "nosniff",
        },
    )
