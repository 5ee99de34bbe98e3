"""`tsa accounts`: the operator's commands for organisations, members and API keys.

They work on the [evidence] database directly (the server may be running: SQLite's
locking serialises the writes). `create-key` prints the bearer token on stdout and
nothing else, once: `KEY=$(tsa accounts create-key ...)`. Errors are one line on stderr
and exit status 2 (the `tsa` group turns TSAErrors into that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click

from tsa_server.accounts.key_rules import Role, parse_role, parse_scopes
from tsa_server.accounts.keys import MAX_KEY_DAYS, key_summary
from tsa_server.accounts.service import Accounts
from tsa_server.accounts.times import ts, utc_now
from tsa_server.cli.options import config_option
from tsa_server.database import database_errors
from tsa_server.errors import ConfigError
from tsa_server.evidence.errors import EvidenceError

_ROLES = click.Choice([r.value for r in Role])


@contextmanager
def _accounts(config_path: str) -> Iterator[Accounts]:
    from tsa_server.config import load_config

    config = load_config(config_path)
    from tsa_server.wiring.databases import open_evidence_store

    try:
        store = open_evidence_store(config)
    except ConfigError as exc:
        raise EvidenceError(str(exc)) from None
    try:
        yield Accounts(store)
    except database_errors() as exc:
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
        report: list[dict[str, Any]] = [
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


@accounts.command("set-password")
@config_option
@click.option("--org", "org_id", required=True, help="Organisation id.")
@click.option("--member", "member_id", required=True, help="The member (mem_...) who signs in.")
@click.option("--login", required=True, help="What they sign in with (an e-mail address).")
def set_password(config_path: str, org_id: str, member_id: str, login: str) -> None:
    """Let a member sign in to the web pages: a login and a password (asked for at a
    terminal, else the first line of standard input; never an argument). Ends the
    member's open sessions."""
    import sys

    from tsa_server.accounts.people import People
    from tsa_server.config import load_config
    from tsa_server.wiring.databases import open_evidence_store

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        store = open_evidence_store(load_config(config_path))
    except ConfigError as exc:
        raise EvidenceError(str(exc)) from None
    try:
        login = People(store.db).set_password(org_id, member_id, login, password)
    except database_errors() as exc:
        raise EvidenceError(f"evidence database error: {exc}") from None
    finally:
        store.close()
    click.echo(f"member {member_id} signs in as {login}", err=True)
