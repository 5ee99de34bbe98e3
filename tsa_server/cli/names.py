"""`tsa names`: the operator's commands for the trade-name (字号 / handle) registry.

`check`, `show` and `history` read the [names] database and policy directly (the
server may be running). `decide` changes state, so it goes through the running server
(`POST /api/v1/names/{handle}/decision`): the event must be time-stamped by the TSA and
appended to the operations log, which only the server writes. It needs an admin-scope
API key of an operator organisation ([names] operators) in $TSA_API_KEY.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from tsa_server.cli.options import URL, config_option, server_url
from tsa_server.errors import ConfigError

if TYPE_CHECKING:
    from tsa_server.names import Event, Registry


@contextmanager
def _registry(config_path: str) -> Iterator[Registry]:
    """A read-only view: the registry on the [names] database with a sink that refuses."""
    from tsa_server.config import load_config
    from tsa_server.names import Lexicon, Registry, load_policy
    from tsa_server.names.policy_edits import effective_lexicon, effective_policy
    from tsa_server.names.policy_store import read_overlay
    from tsa_server.names.sql_store import SqlNameStore
    from tsa_server.names.words import LexiconSource
    from tsa_server.wiring.databases import names_database

    config = load_config(config_path)
    policy_path = Path(config.names.policy)
    if not policy_path.exists():
        raise ConfigError(f"[names] policy: {policy_path} does not exist")
    policy = load_policy(policy_path)
    if policy.word_lists is not None:
        w = policy.word_lists
        lexicon = LexiconSource(w.banned, w.restricted, w.brands).current()
    else:
        lexicon = Lexicon()
    # what the server has in force: the files plus the administrators' overlay
    where = names_database(config)
    _, overlay = read_overlay(where)
    lexicon = effective_lexicon(lexicon, overlay)
    policy = effective_policy(policy, overlay)
    store = SqlNameStore(where, owns=True)

    class _ReadOnly:
        def record(self, event: Event, canonical: bytes) -> None:
            raise ConfigError("tsa names changes state only through the server")

    from datetime import UTC, datetime

    try:
        yield Registry(policy, lambda: lexicon, lambda: datetime.now(UTC), _ReadOnly(), store)
    finally:
        store.close()


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@click.group("names")
def names() -> None:
    """The trade-name (字号 / handle) registry."""


@names.command("check")
@config_option
@click.option("--shop-name", default=None, help="The shop name the handle would head.")
@click.argument("handle")
def check(config_path: str, shop_name: str | None, handle: str) -> None:
    """Byte count, validity and the reason of a refusal; exit 2 when refused."""
    with _registry(config_path) as registry:
        c = registry.check(handle, shop_name)
    out: dict[str, Any] = {
        "handle": c.handle.text,
        "bytes": c.handle.byte_length,
        "valid": c.ok,
        "reason": c.reason.value if c.reason else None,
        "detail": c.refused.detail if c.refused else None,
    }
    if c.shop_name is not None:
        out["shop_name"] = {"text": c.shop_name.text, "bytes": c.shop_name.byte_length}
    _echo(out)
    if not c.ok:  # a check that failed (ledger/cli_run.py)
        click.get_current_context().exit(2)


@names.command("show")
@config_option
@click.argument("handle")
def show(config_path: str, handle: str) -> None:
    """The handle's whole record (operator view: every contender's metrics)."""
    from tsa_server.names.sql_store import record_to_json

    with _registry(config_path) as registry:
        rec = registry.lookup(handle)
        _echo({"handle": handle, "status": "free"} if rec is None else record_to_json(rec))


@names.command("history")
@config_option
@click.argument("handle")
def history(config_path: str, handle: str) -> None:
    """Every event of the handle with its RFC 3161 token (base64) and genTime."""
    from tsa_server.names.sql_store import SqlNameStore
    from tsa_server.names.timestamping import event_json

    with _registry(config_path) as registry:
        store = registry.store
        assert isinstance(store, SqlNameStore)  # _registry opens the [names] database
        events = store.events_touching(registry.key(handle), registry.key)
    _echo({"handle": handle, "events": [event_json(e, reveal=True) for e in events]})


@names.command("policy")
@config_option
def policy(config_path: str) -> None:
    """The word lists and dispute weights in force (files plus the administrators'
    overlay in the database) and every change with its SHA-256 and genTime."""
    from tsa_server.names.config import METRICS
    from tsa_server.names.policy_edits import LISTS, content_digest, etag
    from tsa_server.names.policy_store import PolicyStore
    from tsa_server.names.sql_store import SqlNameStore

    with _registry(config_path) as registry:
        lexicon = registry._lexicon()
        weights = registry.policy.disputes.weights
        assert isinstance(registry.store, SqlNameStore)  # _registry opens the database
        store = PolicyStore(registry.store.db)
        version, changes = store.version(), store.changes()
    _echo(
        {
            "version": version,
            "etag": etag(version, content_digest(lexicon, weights)),
            "lists": {n: sorted(getattr(lexicon, n)) for n in LISTS},
            "weights": {m: str(getattr(weights, m)) for m in METRICS},
            "changes": [
                {
                    "version": c.version,
                    "at": c.at,
                    "by": {"org": c.by_org, "key": c.by_key},
                    "sha256": c.sha256,
                    "gen_time": c.gen_time,
                    "ops_index": c.ops_index,
                }
                for c in changes
            ],
        }
    )


@names.command("decide")
@config_option
@click.option("--winner", default=None, help="Shop id (organisation id) that gets the handle.")
@click.option("--certify", "certify", default=None, help="Brand applicant's shop id: accept.")
@click.option("--reject", "reject", default=None, help="Brand applicant's shop id: refuse.")
@click.option("--uphold", "uphold", default=None, help="Complainant's shop id (H-13): uphold.")
@click.option("--dismiss", "dismiss", default=None, help="Complainant's shop id: dismiss.")
@click.option("--note", default="", help="Reason recorded with the decision.")
@URL
@click.argument("handle")
def decide(
    config_path: str,
    winner: str | None,
    certify: str | None,
    reject: str | None,
    uphold: str | None,
    dismiss: str | None,
    note: str,
    url: str | None,
    handle: str,
) -> None:
    """Decide a contested handle through the server (API key in $TSA_API_KEY); without
    --winner the provisional leader takes it when nobody objected. --certify / --reject
    review a brand (Group 1) applicant's proof; --uphold / --dismiss decide a trademark
    complaint (H-13: upheld, the handle moves to the complainant)."""
    if sum(x is not None for x in (winner, certify, reject, uphold, dismiss)) > 1:
        raise click.UsageError("give one of --winner, --certify, --reject, --uphold, --dismiss")
    key = os.environ.get("TSA_API_KEY")
    if not key:
        raise ConfigError("set $TSA_API_KEY to an operator's admin-scope API key")
    url = server_url(config_path, url)
    payload: dict[str, str | None] = {"winner": winner, "note": note}
    if certify or reject:
        payload = {"brand": certify or reject, "verdict": "certify" if certify else "reject"}
        payload["note"] = note
    if uphold or dismiss:
        verdict = "uphold" if uphold else "dismiss"
        payload = {"complaint": uphold or dismiss, "verdict": verdict, "note": note}
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{url}api/v1/names/{quote(handle, safe='')}/decision",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            _echo(json.loads(reply.read()))
    except urllib.error.HTTPError as err:
        raise ConfigError(f"{err.code}: {err.read().decode(errors='replace')}") from None
    except urllib.error.URLError as err:
        raise ConfigError(
            f"cannot reach the server at {url}: {err.reason} (is `tsa serve` running there? "
            "--url or [server] in --config name it)"
        ) from None
