"""The administrators' overlay on SQLite: versions, persistence, reload, and the
registry's checks seeing a change at once (policy_admin.py, policy_store.py).
The HTTP test (tests/web/test_names_admin_http.py) time-stamps with the real TSA;
here the stamp is a plain value so the store's rules are tested alone."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from tsa_server.names import Policy, Refusal, Registry
from tsa_server.names.config import WordListPaths
from tsa_server.names.policy_admin import PolicyAdmin
from tsa_server.names.policy_edits import EditError, StaleVersion, list_edit, weights_edit
from tsa_server.names.policy_store import PolicyStore, read_overlay
from tsa_server.names.words import LexiconSource, WordListError

from .conftest import FakeClock


@dataclass(frozen=True)
class _Stamp:
    token: bytes
    gen_time: str


class _Ops:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict]] = []

    def record(self, kind: str, **details) -> int:
        self.entries.append((kind, details))
        return len(self.entries) - 1


async def _stamp(canonical: bytes) -> _Stamp:
    return _Stamp(b"token:" + hashlib.sha256(canonical).digest(), "2024-01-01T04:00:00.000Z")


async def _no_token(canonical: bytes) -> _Stamp:
    raise RuntimeError("no token")


@pytest.fixture
def files(tmp_path: Path) -> WordListPaths:
    paths = WordListPaths(*(tmp_path / f"{n}.txt" for n in ("banned", "restricted", "brands")))
    paths.banned.write_text("国家级\n", encoding="utf-8")
    paths.restricted.write_text("旗舰\n店\n", encoding="utf-8")
    paths.brands.write_text("小米\n", encoding="utf-8")
    return paths


def _admin(files: WordListPaths, db: Path) -> tuple[PolicyAdmin, Registry]:
    source = LexiconSource(files.banned, files.restricted, files.brands)
    registry = Registry(Policy(), lambda: admin.lexicon(), FakeClock(None), None)
    admin = PolicyAdmin(Policy(), source, PolicyStore(db), lambda p: setattr(registry, "policy", p))
    return admin, registry


def _edit(admin: PolicyAdmin, if_match: str, stamp=_stamp, ops=None, **kw):
    return asyncio.run(
        admin.edit(
            if_match=if_match,
            by={"org": "org_op", "key": "key_1"},
            at="2024-01-01T04:00:00Z",
            stamp=stamp,
            ops=ops,
            **kw,
        )
    )


def test_edit_is_versioned_logged_durable_and_in_force(files, tmp_path):
    db = tmp_path / "names.sqlite"
    admin, registry = _admin(files, db)
    assert registry.check("星辰").ok
    first = admin.view()
    ops = _Ops()
    change = _edit(
        admin, first.etag, ops=ops, edits=(list_edit("brands", ["星辰"], None, Policy()),)
    )
    assert change.version == 1 and admin.view().version == 1
    assert registry.check("星辰").reason is Refusal.BRAND_PROOF_REQUIRED  # at once
    record = json.loads(change.canonical)
    assert record["by"] == {"org": "org_op", "key": "key_1"}
    assert record["words"] == {"brands": {"add": ["星辰"], "remove": []}}
    assert ops.entries == [
        (
            "name_policy",
            {
                "version": 1,
                "by": {"org": "org_op", "key": "key_1"},
                "words": record["words"],
                "weights": {},
                "sha256": change.sha256,
            },
        )
    ]
    # a second administrator still holding the first ETag is refused; nothing changes
    with pytest.raises(StaleVersion) as stale:
        _edit(admin, first.etag, edits=(list_edit("banned", ["最佳"], None, Policy()),))
    assert stale.value.current == admin.view().etag
    assert "最佳" not in admin.lexicon().banned
    # weights: the registry's policy follows
    _edit(admin, "*", weights=weights_edit({"search_rate": 50}))
    assert registry.policy.disputes.weights.search_rate == 50
    # a fresh process on the same database has the same policy in force
    again, registry2 = _admin(files, db)
    assert again.view() == admin.view()
    assert registry2.check("星辰").reason is Refusal.BRAND_PROOF_REQUIRED
    assert registry2.policy.disputes.weights.search_rate == 50
    assert [c.version for c in again.store.changes()] == [1, 2]
    assert read_overlay(db)[1].added["brands"] == {"星辰"}


def test_no_token_or_bad_edit_changes_nothing(files, tmp_path):
    admin, registry = _admin(files, tmp_path / "names.sqlite")
    before = admin.view()
    with pytest.raises(RuntimeError):
        _edit(
            admin,
            before.etag,
            stamp=_no_token,
            edits=(list_edit("banned", ["最佳"], None, Policy()),),
        )
    with pytest.raises(EditError):
        _edit(admin, before.etag, edits=(list_edit("banned", ["国家级"], None, Policy()),))
    assert admin.view() == before and admin.store.changes() == []


def test_reload_keeps_the_overlay_and_changes_the_etag(files, tmp_path):
    admin, registry = _admin(files, tmp_path / "names.sqlite")
    _edit(admin, "*", edits=(list_edit("banned", None, ["国家级"], Policy()),))
    files.banned.write_text("国家级\n最佳\n", encoding="utf-8")
    tag = admin.view().etag
    view = admin.reload()
    assert view.lexicon.banned == {"最佳"} and view.etag != tag and view.version == 1
    assert registry.check("国家级好").ok and not registry.check("最佳好").ok
    files.banned.write_text("bad word!\n", encoding="utf-8")
    with pytest.raises(WordListError):
        admin.reload()
    assert admin.view() == view


def test_changes_are_append_only(files, tmp_path):
    db = tmp_path / "names.sqlite"
    admin, _ = _admin(files, db)
    _edit(admin, "*", edits=(list_edit("banned", ["最佳"], None, Policy()),))
    conn = sqlite3.connect(db)
    for sql in ("UPDATE policy_changes SET by_org = 'x'", "DELETE FROM policy_changes"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()
