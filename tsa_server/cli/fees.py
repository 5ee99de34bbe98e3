"""`tsa fees`: credit lots, balances and the credit ledger (on the [evidence] database)."""

from __future__ import annotations

import click

from tsa_server.accounts.times import ts
from tsa_server.cli.options import (
    JSON,
    ORG,
    config_option,
    echo_json,
    open_evidence,
    org_exists,
)


@click.group("fees")
def fees() -> None:
    """Credit lots, balances and the credit ledger of the evidence service."""


@fees.command("grant")
@config_option
@ORG
@click.option("--units", type=click.IntRange(1, 1_000_000), required=True)
@click.option(
    "--key", "key", required=True, help="Idempotency key: the same key never grants twice."
)
@click.option("--note", default="", help="Why (an order number, a correction...).")
def grant(config_path: str, org_id: str, units: int, key: str, note: str) -> None:
    """Grant a credit lot (P-1); it lapses 12 months later (P-3). Prints the lot id."""
    with open_evidence(config_path) as service:
        lot, created = service.grant_lot(org_id, units, key, note=note)
        balance = service.balance(org_id)
    click.echo(lot.lot_id)
    what = "granted" if created else "already granted (same key)"
    click.echo(
        f"{what}: {lot.quantity} units, lapse {ts(lot.lapses_at)}; balance {balance}", err=True
    )


@fees.command("balance")
@config_option
@ORG
@JSON
def balance(config_path: str, org_id: str, as_json: bool) -> None:
    """The balance and the lots in consumption order (FEFO)."""
    from tsa_server.evidence.views import lot_json

    with open_evidence(config_path) as service:
        org_exists(service, org_id)
        now = service.now()
        lots = [lot_json(lot, now) for lot in service.lots(org_id)]
        report = {"balance": service.balance(org_id, now), "lots": lots}
    if as_json:
        echo_json(report)
        return
    click.echo(f"balance {report['balance']}")
    for lot in lots:
        click.echo(
            f"  {lot['id']}  {lot['remaining']:>7}/{lot['quantity']:<7} held {lot['held']:<4}"
            f" lapses {lot['lapses_at']} ({lot['lapses_at_beijing']})"
        )


@fees.command("entries")
@config_option
@ORG
@click.option("--after", "after_id", type=click.IntRange(0), default=0)
@click.option("--limit", type=click.IntRange(1, 1000), default=100)
@JSON
def entries(config_path: str, org_id: str, after_id: int, limit: int, as_json: bool) -> None:
    """The organisation's credit entries (append-only, oldest first)."""
    from tsa_server.evidence.views import entry_json

    with open_evidence(config_path) as service:
        org_exists(service, org_id)
        rows = [entry_json(e) for e in service.entries(org_id, after_id=after_id, limit=limit)]
    if as_json:
        echo_json(rows)
        return
    for e in rows:
        click.echo(
            f"{e['id']:>6}  {e['at'] or e['created_at']}  {e['kind']:<9} {e['units']:>+5}"
            f"  {e['lot'] or '-'}  {e['item'] or '-'}  {e['note']}".rstrip()
        )
