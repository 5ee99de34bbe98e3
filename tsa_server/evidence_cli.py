"""`tsa accounts`: the operator's commands for organisations, members and API keys;
`tsa fees` (credit lots, balance, entries) and `tsa evidence` (deposit, list, show,
renew-run, reminders, forecast): see the second half of this module.

They work on the [evidence] database directly (the server may be running: SQLite's
locking serialises the writes). `create-key` prints the bearer token on stdout and
nothing else, once: `KEY=$(tsa accounts create-key ...)`. Errors are one line on stderr
and exit status 2 (the `tsa` group turns TSAErrors into that).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from tsa_server.cli_options import config_option
from tsa_server.evidence.accounts import (
    MAX_KEY_DAYS,
    Accounts,
    Role,
    key_summary,
    parse_role,
    parse_scopes,
)
from tsa_server.evidence.errors import EvidenceError
from tsa_server.evidence.store import EvidenceStore
from tsa_server.evidence.times import ts, utc_now

_ROLES = click.Choice([r.value for r in Role])


@contextmanager
def _accounts(config_path: str) -> Iterator[Accounts]:
    from tsa_server.config import load_config

    config = load_config(config_path)
    try:
        store = EvidenceStore(config.evidence.path)
    except (OSError, sqlite3.Error) as exc:
        raise EvidenceError(f"cannot open {config.evidence.path}: {exc}") from None
    try:
        yield Accounts(store)
    except sqlite3.Error as exc:
        raise EvidenceError(f"evidence database error: {exc}") from None
    finally:
        store.close()


@click.group("accounts")
def accounts() -> None:
    """Organisations, members and API keys of the evidence API."""


@accounts.command("create-org")
@config_option
@click.argument("name")
def create_org(config_path: str, name: str) -> None:
    """Create an organisation; prints its id."""
    with _accounts(config_path) as service:
        org = service.create_organisation(name)
    click.echo(org.id)
    click.echo(f"created organisation {org.name!r}", err=True)


@accounts.command("add-member")
@config_option
@click.option("--org", "org_id", required=True, help="Organisation id.")
@click.option("--role", type=_ROLES, default="member", show_default=True)
@click.argument("name")
def add_member(config_path: str, org_id: str, role: str, name: str) -> None:
    """Add a member (a person) to an organisation; prints the member id."""
    with _accounts(config_path) as service:
        member = service.add_member(org_id, name, Role(role))
    click.echo(member.id)
    click.echo(f"added {member.role} {member.name!r} to {org_id}", err=True)


@accounts.command("create-key")
@config_option
@click.option("--org", "org_id", required=True, help="Organisation id.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="timestamp, deposit, read or admin; repeat or separate with commas.",
)
@click.option("--role", type=_ROLES, default="member", show_default=True)
@click.option("--name", default="", help="A label for the key (shown in key lists).")
@click.option("--member", "member_id", default=None, help="The member who holds the key.")
@click.option(
    "--expires-days",
    type=click.IntRange(1, MAX_KEY_DAYS),
    default=None,
    help="Lifetime in days (default: until revoked).",
)
def create_key(
    config_path: str,
    org_id: str,
    scopes: tuple[str, ...],
    role: str,
    name: str,
    member_id: str | None,
    expires_days: int | None,
) -> None:
    """Create an API key; prints its secret token, the only time it is ever shown."""
    with _accounts(config_path) as service:
        expires_at = None if expires_days is None else service.now() + timedelta(expires_days)
        created = service.create_key(
            org_id,
            scopes=parse_scopes(scopes),
            role=parse_role(role),
            name=name,
            member_id=member_id,
            expires_at=expires_at,
        )
    key = created.key
    click.echo(created.secret)
    click.echo(
        f"created {key.role} key {key.id} ({', '.join(sorted(key.scopes))}) for {org_id}; "
        "the secret above is shown only once: store it now",
        err=True,
    )


@accounts.command("list")
@config_option
@click.option("--org", "org_id", default=None, help="Only this organisation.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_accounts(config_path: str, org_id: str | None, as_json: bool) -> None:
    """List organisations with their members and API keys (never a secret)."""
    now = utc_now()
    with _accounts(config_path) as service:
        store = service.store
        orgs = [service.organisation(org_id)] if org_id else store.organisations()
        report = [
            {
                "id": org.id,
                "name": org.name,
                "created_at": ts(org.created_at),
                "members": [
                    {"id": m.id, "name": m.name, "role": str(m.role)} for m in store.members(org.id)
                ],
                "keys": [key_summary(k, now) for k in store.api_keys(org.id)],
            }
            for org in orgs
        ]
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for org in report:
        click.echo(f"{org['id']}  {org['name']}  (created {org['created_at']})")
        for member in org["members"]:
            click.echo(f"  member {member['id']}  {member['role']:<7}  {member['name']}")
        for key in org["keys"]:
            used = key["last_used_at"] or "never"
            click.echo(
                f"  key {key['id']}  {key['role']:<7}  {','.join(key['scopes']):<28}"
                f"  {key['state']:<7}  last used {used}  {key['name']}".rstrip()
            )


@accounts.command("revoke-key")
@config_option
@click.argument("key_id")
def revoke_key(config_path: str, key_id: str) -> None:
    """Revoke an API key at once (it can never be used again)."""
    with _accounts(config_path) as service:
        key = service.revoke_key_by_id(key_id)
    click.echo(f"key {key.id} of {key.org_id} revoked at {ts(key.revoked_at)}")


# ---------------------------------------------------------------- tsa fees / tsa evidence
#
# The operator's view of credits and items, on the [evidence] database directly (like
# `tsa accounts`), through the same EvidenceService the server uses. Certification needs
# the TSA's signing key, which only the server holds: `tsa evidence deposit` is a client
# of the running server's API (the API key comes from $TSA_API_KEY, never the command
# line, which other users can read).


@contextmanager
def _evidence(config_path: str) -> Iterator[Any]:
    from tsa_server.config import load_config
    from tsa_server.evidence.blobs import FileBlobStore
    from tsa_server.evidence.service import open_evidence_service

    config = load_config(config_path)
    try:
        store = EvidenceStore(config.evidence.path)
    except (OSError, sqlite3.Error) as exc:
        raise EvidenceError(f"cannot open {config.evidence.path}: {exc}") from None
    try:
        blobs = FileBlobStore(config.evidence.blobs, max_bytes=config.evidence.max_upload_bytes)
        yield open_evidence_service(config.evidence, store, blobs, _NoIssuer(), None)
    except sqlite3.Error as exc:
        raise EvidenceError(f"evidence database error: {exc}") from None
    finally:
        store.close()


class _NoIssuer:
    async def timestamp(self, digest: bytes, hash_name: str = "sha256") -> Any:
        raise EvidenceError("certification needs the running server: use `tsa evidence deposit`")


def _org_exists(service: Any, org_id: str) -> None:
    if service.store.organisation(org_id) is None:
        raise EvidenceError(f"no organisation {org_id}")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _instant(text: str | None) -> datetime | None:
    """--at: an ISO 8601 instant; without an offset it is Beijing wall-clock time (G-1)."""
    if text is None:
        return None
    from tsa_server.beijing_calendar import BEIJING

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 instant: {text}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=BEIJING)
    return value.astimezone(UTC)


_ORG = click.option("--org", "org_id", required=True, help="Organisation id.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group("fees")
def fees() -> None:
    """Credit lots, balances and the credit ledger of the evidence service."""


@fees.command("grant")
@config_option
@_ORG
@click.option("--units", type=click.IntRange(1, 1_000_000), required=True)
@click.option(
    "--key", "key", required=True, help="Idempotency key: the same key never grants twice."
)
@click.option("--note", default="", help="Why (an order number, a correction...).")
def grant(config_path: str, org_id: str, units: int, key: str, note: str) -> None:
    """Grant a credit lot (P-1); it lapses 12 months later (P-3). Prints the lot id."""
    with _evidence(config_path) as service:
        lot, created = service.grant_lot(org_id, units, key, note=note)
        balance = service.balance(org_id)
    click.echo(lot.lot_id)
    what = "granted" if created else "already granted (same key)"
    click.echo(
        f"{what}: {lot.quantity} units, lapse {ts(lot.lapses_at)}; balance {balance}", err=True
    )


@fees.command("balance")
@config_option
@_ORG
@_JSON
def balance(config_path: str, org_id: str, as_json: bool) -> None:
    """The balance and the lots in consumption order (FEFO)."""
    from tsa_server.evidence.views import lot_json

    with _evidence(config_path) as service:
        _org_exists(service, org_id)
        now = service.now()
        report = {
            "balance": service.balance(org_id, now),
            "lots": [lot_json(lot, now) for lot in service.lots(org_id)],
        }
    if as_json:
        _echo_json(report)
        return
    click.echo(f"balance {report['balance']}")
    for lot in report["lots"]:
        click.echo(
            f"  {lot['id']}  {lot['remaining']:>7}/{lot['quantity']:<7} held {lot['held']:<4}"
            f" lapses {lot['lapses_at']} ({lot['lapses_at_beijing']})"
        )


@fees.command("entries")
@config_option
@_ORG
@click.option("--after", "after_id", type=click.IntRange(0), default=0)
@click.option("--limit", type=click.IntRange(1, 1000), default=100)
@_JSON
def entries(config_path: str, org_id: str, after_id: int, limit: int, as_json: bool) -> None:
    """The organisation's credit entries (append-only, oldest first)."""
    from tsa_server.evidence.views import entry_json

    with _evidence(config_path) as service:
        _org_exists(service, org_id)
        rows = [entry_json(e) for e in service.entries(org_id, after_id=after_id, limit=limit)]
    if as_json:
        _echo_json(rows)
        return
    for e in rows:
        click.echo(
            f"{e['id']:>6}  {e['at'] or e['created_at']}  {e['kind']:<9} {e['units']:>+5}"
            f"  {e['lot'] or '-'}  {e['item'] or '-'}  {e['note']}".rstrip()
        )


@click.group("evidence")
def evidence() -> None:
    """Evidence items: deposit (through the server), list, show, renewals, forecast."""


@evidence.command("deposit")
@click.option("--url", default="http://127.0.0.1:3161/", show_default=True, help="The server.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--sha256", "sha256", default=None, help="Hash-only: the file's SHA-256 (hex).")
@click.option("--store/--hash-only", default=False, help="With --file: keep the original.")
@click.option("--depositor", required=True)
@click.option("--work-content", required=True)
@click.option("--work-title", default="")
@click.option("--statement", default="")
@click.option("--tag", "tags", multiple=True)
def deposit(
    url: str,
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
    form = {"depositor": depositor, "work_content": work_content}
    if work_title:
        form["work_title"] = work_title
    if statement:
        form["statement"] = statement
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
    _echo_json(body)
    if status >= 300:
        raise EvidenceError(f"the server refused the deposit ({status}): {body.get('error')}")


@evidence.command("list")
@config_option
@_ORG
@click.option("--limit", type=click.IntRange(1, 1000), default=100)
@_JSON
def list_items(config_path: str, org_id: str, limit: int, as_json: bool) -> None:
    """The organisation's items, newest first."""
    with _evidence(config_path) as service:
        _org_exists(service, org_id)
        rows = [service.view(org_id, item) for item in service.items(org_id, limit=limit)]
    if as_json:
        _echo_json(rows)
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
@_ORG
@click.argument("item_id")
def show(config_path: str, org_id: str, item_id: str) -> None:
    """One item as JSON (storage status, expiry, downloads)."""
    with _evidence(config_path) as service:
        _echo_json(service.view(org_id, service.item(org_id, item_id)))


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

    with _evidence(config_path) as service:
        report = RenewalRunner(service).run(_instant(at))
    _echo_json(report.as_dict())
    if report.errors:
        raise EvidenceError(f"{len(report.errors)} organisation(s) failed: see the log")


@evidence.command("reminders")
@config_option
@_ORG
def reminders(config_path: str, org_id: str) -> None:
    """Reminders due now and the latest notices, as JSON."""
    from tsa_server.evidence.views import notice_json

    with _evidence(config_path) as service:
        _org_exists(service, org_id)
        _echo_json(
            {
                "due": [notice_json(n) for n in service.reminders(org_id)],
                "notices": [notice_json(n) for n in service.notices(org_id)],
            }
        )


@evidence.command("forecast")
@config_option
@_ORG
def forecast(config_path: str, org_id: str) -> None:
    """The 12-month storage obligations forecast against the balance, as JSON."""
    from tsa_server.evidence.views import forecast_json

    with _evidence(config_path) as service:
        _org_exists(service, org_id)
        _echo_json(forecast_json(service.forecast(org_id)))
