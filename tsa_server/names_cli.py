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
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import click

from tsa_server.cli_options import config_option
from tsa_server.errors import ConfigError


@contextmanager
def _registry(config_path: str) -> Iterator:
    """A read-only view: the registry on the [names] database with a sink that refuses."""
    from tsa_server.config import load_config
    from tsa_server.names import Lexicon, Registry, load_policy
    from tsa_server.names.sqlite_store import SqliteNameStore
    from tsa_server.names.words import LexiconSource

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
    store = SqliteNameStore(config.names.path)

    class _ReadOnly:
        def record(self, event, canonical) -> None:
            raise ConfigError("tsa names changes state only through the server")

    from datetime import UTC, datetime

    try:
        yield Registry(policy, lambda: lexicon, lambda: datetime.now(UTC), _ReadOnly(), store)
    finally:
        store.close()


def _echo(value) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@click.group("names")
def names() -> None:
    """The trade-name (字号 / handle) registry."""


@names.command("check")
@config_option
@click.option("--shop-name", default=None, help="The shop name the handle would head.")
@click.argument("handle")
def check(config_path: str, shop_name: str | None, handle: str) -> None:
    """Byte count, validity and the reason of a refusal; exit 1 when refused."""
    with _registry(config_path) as registry:
        c = registry.check(handle, shop_name)
    out = {
        "handle": c.handle.text,
        "bytes": c.handle.byte_length,
        "valid": c.ok,
        "reason": c.reason.value if c.reason else None,
        "detail": c.refused.detail if c.refused else None,
    }
    if c.shop_name is not None:
        out["shop_name"] = {"text": c.shop_name.text, "bytes": c.shop_name.byte_length}
    _echo(out)
    if not c.ok:
        sys.exit(1)


@names.command("show")
@config_option
@click.argument("handle")
def show(config_path: str, handle: str) -> None:
    """The handle's whole record (operator view: every contender's metrics)."""
    from tsa_server.names.sqlite_store import record_to_json

    with _registry(config_path) as registry:
        rec = registry.lookup(handle)
        _echo({"handle": handle, "status": "free"} if rec is None else record_to_json(rec))


@names.command("history")
@config_option
@click.argument("handle")
def history(config_path: str, handle: str) -> None:
    """Every event of the handle with its RFC 3161 token (base64) and genTime."""
    from tsa_server.names.timestamping import event_json

    with _registry(config_path) as registry:
        events = registry.store.events_touching(registry.key(handle), registry.key)
    _echo({"handle": handle, "events": [event_json(e, reveal=True) for e in events]})


@names.command("decide")
@config_option
@click.option("--winner", default=None, help="Shop id (organisation id) that gets the handle.")
@click.option("--note", default="", help="Reason recorded with the decision.")
@click.option("--url", default=None, help="Server URL (default: [server] host and port).")
@click.argument("handle")
def decide(config_path: str, winner: str | None, note: str, url: str | None, handle: str) -> None:
    """Decide a contested handle through the server (API key in $TSA_API_KEY); without
    --winner the provisional leader takes it when nobody objected."""
    from tsa_server.config import load_config

    key = os.environ.get("TSA_API_KEY")
    if not key:
        raise ConfigError("set $TSA_API_KEY to an operator's admin-scope API key")
    if url is None:
        server = load_config(config_path).server
        url = f"http://{server.host}:{server.port}"
    body = json.dumps({"winner": winner, "note": note}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/names/{quote(handle, safe='')}/decision",
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
        raise ConfigError(f"cannot reach {url}: {err.reason}") from None
