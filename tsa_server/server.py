"""`tsa serve`: from a checked configuration to a running server and back.

The PID file first (one server per state directory: pidfile.py), then logging, the
services (wiring.py), the application (app.py), the listeners: plain HTTP on [server]
host and port, HTTPS on tls_host and tls_port when a certificate is configured
(web/tls.py), metrics on a listener of their own when [metrics] host is set; then
web/lifecycle.py serves until the process is told to stop, and this says what the stop
finished: the requests in progress and the last checkpoint of each log.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ledger.errors import LedgerWriteError
from tsa_server.config import Config
from tsa_server.pidfile import PidFile
from tsa_server.web.lifecycle import Site
from tsa_server.web.tls import ReloadableTls

Say = Callable[[str], None]


def _listeners(config: Config) -> tuple[list[Site], ReloadableTls | None]:
    server = config.server
    sites = [Site(server.host, server.port)]
    tls = None
    if server.tls:
        tls = ReloadableTls(Path(server.tls_certificate), Path(server.tls_key))
        sites.append(Site(server.tls_host or server.host, server.tls_port, tls.context))
    return sites, tls


def _stop_when_deposed(logs: Mapping[str, Any]) -> set[str]:
    """Have the server stop (as on SIGTERM: drained, in-flight requests answered) when
    another node takes one of its PostgreSQL logs over; the names of the logs taken are
    added to the set returned, and `tsa serve` then exits 1 so that its supervisor
    restarts it. A deposed node can issue nothing: every append of it is refused."""
    taken: set[str] = set()
    for name, ledger_log in logs.items():
        store = ledger_log.store
        if getattr(store, "deposed", None) is None:
            continue  # SQLite: one writer by its lock file, no one else can take it

        def deposed(name: str = name, log_name: str = store.log) -> None:
            logging.getLogger("tsa.ledger").critical(
                "another node took over the ledger log %r: stopping", log_name
            )
            taken.add(name)
            os.kill(os.getpid(), signal.SIGTERM)

        store.on_deposed = deposed
    return taken


def serve(config: Config, *, new_ledger: bool = False, say: Say = print) -> None:
    """Serve until interrupted; `say` prints what the operator should see."""
    pid_file = PidFile(Path(config.server.pid_file)).acquire()
    try:
        _serve(config, new_ledger, say)
    finally:
        pid_file.release()


def _serve(config: Config, new_ledger: bool, say: Say) -> None:
    from tsa_server.app import create_app
    from tsa_server.web import drain, lifecycle, logs, metrics, observe, serving
    from tsa_server.wiring import build_services

    logs.configure(config.logging.level, config.logging.format)
    if config.clock.accept_local_reference:
        logging.getLogger("tsa.clock").warning(
            "[clock] accept_local_reference is on: an NTP server serving its own local clock "
            "is trusted (development only)"
        )
    sites, tls = _listeners(config)  # the TLS files are checked before anything opens
    services = build_services(config, new_ledger=new_ledger)
    deposed = _stop_when_deposed(services.logs)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    app = create_app(services)
    monitoring = app[metrics.MONITORING]
    maintenance = app[drain.MAINTENANCE] = drain.Maintenance(
        Path(config.server.maintenance_file) if config.server.maintenance_file else None
    )
    tally = observe.Tally()
    side_apps = []
    if config.metrics.host:
        side_apps.append(
            (metrics.metrics_app(monitoring), Site(config.metrics.host, config.metrics.port))
        )
    plan = lifecycle.Plan(
        serving.Listener(
            config.server.host,
            config.server.port,
            config.server.max_connections,
            config.server.idle_timeout_s,
            serving.BodyLimits(
                config.server.body_grace_s,
                config.server.body_min_rate_bytes_s,
                config.server.body_timeout_s,
            ),
        ),
        tuple(sites),
        tls,
        observe.access_hook(monitoring.http, config.logging.access, tally),
        tuple(side_apps),
        maintenance,
        tally,
        config.server.drain_timeout_s,
    )
    urls = "  ".join(site.url for site in plan.sites)
    say(f"TSA serving on {urls}  (CA file: {config.certificates.ca})")
    if tls is not None:
        say(f"TLS certificate: {tls.loaded.describe()}")
    for _, site in side_apps:
        say(f"metrics (no key) on {site.url}metrics")
    # Everything built so far lives as long as the server: keep it out of the cyclic
    # collector's full passes, whose pauses otherwise show in the latency tail.
    gc.collect()
    gc.freeze()
    try:
        report = lifecycle.run(app, plan)
    finally:
        services.close()
    if deposed:
        raise LedgerWriteError(
            f"stopped: another node took over the ledger log(s) {', '.join(sorted(deposed))} "
            "(this node had lost its lease: paused or cut off); a restart takes the log "
            "back once that node has let it go"
        )
    if report is not None:
        checkpoints = ", ".join(
            f"{log} at size {size}"
            for log, (size, _) in sorted(monitoring.checkpoints.latest().items())
        )
        say(
            f"TSA stopped in {report.seconds:.1f} s: {report.finished} request(s) finished "
            f"({report.in_progress} in progress when asked to stop); last checkpoints: "
            f"{checkpoints or 'none'}"
        )
