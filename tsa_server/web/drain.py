"""Draining a node ([server] maintenance_file, SIGUSR1) and stopping it (SIGTERM, Ctrl-C).

While the maintenance file exists, or after a SIGUSR1 until the next one, `/readyz`
answers 503 with the reason, so a load balancer stops sending new clients here; every
request still gets served, and nothing else changes. Once the server is stopping, it
says so there too while the requests in progress finish (web/lifecycle.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web

log = logging.getLogger("tsa.web")


class Maintenance:
    def __init__(self, file: Path | None) -> None:
        self.file = file
        self.switched_on = False  # by SIGUSR1
        self.stopping = False

    def toggle(self) -> None:
        """SIGUSR1: switch maintenance on, or off again."""
        self.switched_on = not self.switched_on
        if self.switched_on:
            log.warning("maintenance on (SIGUSR1): /readyz fails, requests are still served")
        else:
            log.warning("maintenance off (SIGUSR1)")

    def reason(self) -> str | None:
        """Why this node should get no new clients, if it should not (one stat call)."""
        if self.stopping:
            return "stopping: finishing the requests in progress"
        if self.switched_on:
            return "maintenance: switched on by SIGUSR1"
        if self.file is not None and os.path.exists(self.file):
            return f"maintenance: {self.file} exists"
        return None


MAINTENANCE = web.AppKey("maintenance", Maintenance)


def problem(app: web.Application) -> str | None:
    """For /readyz: the maintenance or stopping reason of `app`, if any."""
    maintenance = app.get(MAINTENANCE)
    return None if maintenance is None else maintenance.reason()
