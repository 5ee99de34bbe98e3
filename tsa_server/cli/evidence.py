"""`tsa evidence`: deposit (a client of the running server), list, show, renew-run,
reminders and forecast (on the [evidence] database)."""

from __future__ import annotations

from typing import Any

import click

from tsa_server.cli.options import (
    JSON,
    ORG,
    URL,
    config_option,
    echo_json,
    instant,
    open_evidence,
    org_exists,
    server_url,
)
from tsa_server.evidence.errors import EvidenceError


@click.group("evidence")
def evidence() -> None:
    """Evidence items: deposit (through the server), list, show, renewals, forecast."""


@evidence.command("deposit")
@config_option
@URL
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--sha256", "sha256", default=None, help="Hash-only: the file's SHA-256 (hex).")
@click.option("--store/--hash-only", default=False, help="With --file: keep the original.")
@click.option("--depositor", required=True)
@click.option("--work-content", required=True)
@click.option("--work-title", default="")
@click.option(
    "--statement", required=True, help="The applicant's statement, printed on the certificate."
)
@click.option("--tag", "tags", multiple=True)
def deposit(
    config_path: str,
    url: str | None,
    path: str | None,
    sha256: str | None,
    store: bool,
    depositor: str,
    work_content: str,
    work_title: str,
    statement: str,
    tags: tuple[str, ...],
) -> None:
    """Certify a file (hash-only by default, --store to keep the original) or a digest,
    through the server's API with the key in $TSA_API_KEY. Prints the item as JSON."""
    import os

    from tsa_server.evidence import client

    key = os.environ.get("TSA_API_KEY")
    if not key:
        raise EvidenceError("set TSA_API_KEY to an API key with the deposit scope")
    if (path is None) == (sha256 is None):
        raise click.UsageError("give --file or --sha256")
    url = server_url(config_path, url)
    form: dict[str, Any] = {
        "depositor": depositor,
        "work_content": work_content,
        "statement": statement,
    }
    if work_title:
        form["work_title"] = work_title
    if tags:
        form["tags"] = list(tags)
    if path is not None and store:
        status, body = client.upload(url, key, form, [path])
    else:
        digest = sha256 or client.file_sha256(path)  # type: ignore[arg-type]
        item = {"sha256": digest, **form}
        if path is not None:
            item["file_name"] = os.path.basename(path)
            item["size"] = os.path.getsize(path)
        status, body = client.post_json(url, key, "api/v1/deposits", item)
    echo_json(body)
    if status >= 300:
        raise EvidenceError(f"the server refused the deposit ({status}): {body.get('error')}")


@evidence.command("list")
@config_option
@ORG
@click.option("--limit", type=click.IntRange(1, 1000), default=100)
@JSON
def list_items(config_path: str, org_id: str, limit: int, as_json: bool) -> None:
    """The organisation's items, newest first."""
    with open_evidence(config_path) as service:
        org_exists(service, org_id)
        rows = [service.view(org_id, item) for item in service.items(org_id, limit=limit)]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        storage = r["storage"]
        state = "hash-only" if storage is None else storage["status"]
        expires = "" if storage is None else f" expires {storage['expires_at']}"
        click.echo(
            f"{r['id']}  {r['serial']}  {r['certified_at']}  {state:<16}{expires}"
            f"  {r['sha256'][:16]}  {r['file_name']}".rstrip()
        )


@evidence.command("show")
@config_option
@ORG
@click.argument("item_id")
def show(config_path: str, org_id: str, item_id: str) -> None:
    """One item as JSON (storage status, expiry, downloads)."""
    with open_evidence(config_path) as service:
        echo_json(service.view(org_id, service.item(org_id, item_id)))


@evidence.command("renew-run")
@config_option
@click.option(
    "--at",
    "at",
    default=None,
    help="Evaluate as of this ISO 8601 instant (Beijing time without an offset) instead of "
    "now: catch-up checks and rehearsals. A future instant APPLIES what falls due by then.",
)
def renew_run(config_path: str, at: str | None) -> None:
    """Run the renewal scheduler once (renewals, EXPIRED, purges, lapses, reminders)."""
    from tsa_server.evidence.renewal_runner import RenewalRunner

    with open_evidence(config_path) as service:
        report = RenewalRunner(service).run(instant(at))
    echo_json(report.as_dict())
    if report.errors:
        raise EvidenceError(f"{len(report.errors)} organisation(s) failed: see the log")


@evidence.command("reminders")
@config_option
@ORG
def reminders(config_path: str, org_id: str) -> None:
    """Reminders due now and the latest notices, as JSON."""
    from tsa_server.evidence.views import notice_json

    with open_evidence(config_path) as service:
        org_exists(service, org_id)
        echo_json(
            {
                "due": [notice_json(n) for n in service.reminders(org_id)],
                "notices": [notice_json(n) for n in service.notices(org_id)],
            }
        )


@evidence.command("forecast")
@config_option
@ORG
def forecast(config_path: str, org_id: str) -> None:
    """The 12-month storage obligations forecast against the balance, as JSON."""
    from tsa_server.evidence.views import forecast_json

    with open_evidence(config_path) as service:
        org_exists(service, org_id)
        echo_json(forecast_json(service.forecast(org_id)))
