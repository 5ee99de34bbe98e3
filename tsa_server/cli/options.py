"""What the `tsa` command groups share: the --config option, opening the evidence
service on the [evidence] database, and small output and parsing helpers.

The operator's view of credits and items works on the [evidence] database directly,
through the same EvidenceService the server uses. Certification needs the TSA's signing
key, which only the server holds: `tsa evidence deposit` is a client of the running
server's API (the API key comes from $TSA_API_KEY, never the command line, which other
users can read).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from tsa_server.config import DEFAULT_CONFIG
from tsa_server.database import database_errors
from tsa_server.errors import ConfigError
from tsa_server.evidence.errors import EvidenceError
from tsa_server.evidence.service import EvidenceService

config_option = click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Configuration file.",
)


@contextmanager
def open_evidence(config_path: str) -> Iterator[EvidenceService]:
    from tsa_server.config import load_config
    from tsa_server.evidence.served import open_evidence_service

    config = load_config(config_path)
    from tsa_server.wiring.databases import open_blobs, open_evidence_store

    try:
        store = open_evidence_store(config)
    except ConfigError as exc:
        raise EvidenceError(str(exc)) from None
    try:
        blobs = open_blobs(config, sweep=False)
    except ConfigError as exc:
        store.close()
        raise EvidenceError(str(exc)) from None
    try:
        yield open_evidence_service(config.evidence, store, blobs, _NoIssuer(), None)
    except database_errors() as exc:
        raise EvidenceError(f"evidence database error: {exc}") from None
    finally:
        blobs.close()
        store.close()


class _NoIssuer:
    async def timestamp(self, digest: bytes, hash_name: str = "sha256") -> Any:
        raise EvidenceError("certification needs the running server: use `tsa evidence deposit`")


def org_exists(service: EvidenceService, org_id: str) -> None:
    if service.store.organisation(org_id) is None:
        raise EvidenceError(f"no organisation {org_id}")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def instant(text: str | None) -> datetime | None:
    """--at: an ISO 8601 instant; without an offset it is Beijing wall-clock time (G-1)."""
    if text is None:
        return None
    from tsa_server.clock.beijing import BEIJING

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 instant: {text}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=BEIJING)
    return value.astimezone(UTC)


def server_url(config_path: str, url: str | None) -> str:
    """The running server a client command talks to: --url, else the configuration's
    [server] (public_url, or http://host:port), never a built-in port."""
    if url is not None:
        return url.rstrip("/") + "/"
    from tsa_server.config import load_config

    return load_config(config_path).server.origin + "/"


URL = click.option(
    "--url",
    default=None,
    metavar="URL",
    help="The running server (default: [server] public_url, or host and port, of --config).",
)
ORG = click.option("--org", "org_id", required=True, help="Organisation id.")
JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
