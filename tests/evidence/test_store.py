"""The evidence store: SQLite settings, organisation isolation of items (every method
tried with another organisation's id), the schema's triggers, and credit entries
(idempotent, atomic, append-only, hash-chained)."""

from __future__ import annotations

import hashlib
import inspect
import os
import sqlite3
import stat
from datetime import timedelta

import pytest

from tsa_server.accounts.errors import OrganisationNotFound
from tsa_server.evidence.errors import (
    EvidenceError,
    IdempotencyConflict,
    InvalidInput,
    ItemImmutable,
    ItemNotFound,
)
from tsa_server.evidence.records import (
    ItemMode,
    NewCreditEntry,
    NewItem,
    StorageState,
    StoredNotice,
)
from tsa_server.evidence.store import EvidenceStore
from tsa_server.evidence.webhooks import new_secret


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored_item(store: EvidenceStore, org_id: str, text: str = "original", **fields):
    sha = digest(text)
    return store.insert_item(
        org_id,
        NewItem(ItemMode.STORED, sha, size=len(text), blob_key=sha, title="t", **fields),
    )


def hash_item(store: EvidenceStore, org_id: str, text: str = "hashed"):
    return store.insert_item(org_id, NewItem(ItemMode.HASH_ONLY, digest(text), title="h"))


def certify(store: EvidenceStore, org_id: str, item_id: str, clock):
    return store.update_item(
        org_id, item_id, token=b"\x30\x03der", ledger_index=7, serial=1 << 120, certified_at=clock()
    )


def test_sqlite_is_durable_and_private(db_path) -> None:
    store = EvidenceStore(db_path)
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    store.close()


def test_items_round_trip_and_survive_reopening(store, engine_db, two_orgs, clock) -> None:
    a = two_orgs[0]
    item = stored_item(store, a.id, file_name="photo.jpg", tags=("design", "2025", "design"))
    assert item.tags == ("design", "2025")
    assert item.storage_state is StorageState.ACTIVE and item.blob_key == item.sha256
    assert item.created_at == clock.now
    certified = certify(store, a.id, item.id, clock)
    store.close()
    reopened = engine_db.open()
    try:
        assert reopened.item(a.id, item.id) == certified
        assert certified.serial == 1 << 120 and certified.token == b"\x30\x03der"
    finally:
        reopened.close()


# isolation

# Methods that take no organisation id, each for a stated reason; every other public
# method must take `org_id` first. A new method that touches items without an
# organisation fails this test.
GLOBAL_METHODS = {
    "close": "no data",
    "insert_organisation": "creates the organisation",
    "organisation": "by its own id",
    "organisations": "operator listing (CLI)",
    "insert_member": "the member carries its org_id",
    "insert_api_key": "the key carries its org_id",
    "api_key_for_authentication": "finds the org of a presented key",
    "api_key_org": "operator revocation (CLI)",
    "touch_api_keys": "the authenticated keys themselves",
    "webhook_orgs": "the webhook dispatcher's round: organisation ids only",
    "append_credit_entries": "each entry carries its org_id",
    "blob_references": "returns a count, never an item",
    "verify_credit_chain": "audit; returns a count",
    "hold_job": "a background job of the whole cluster, no organisation's data",
}


def test_every_other_method_takes_the_organisation_first() -> None:
    for name, method in inspect.getmembers(EvidenceStore, inspect.isfunction):
        if name.startswith("_") or name in GLOBAL_METHODS:
            continue
        params = list(inspect.signature(method).parameters)
        assert params[:2] == ["self", "org_id"], f"EvidenceStore.{name} lacks org_id"


def test_an_organisation_cannot_read_or_change_another_ones_items(
    store: EvidenceStore, two_orgs, clock
) -> None:
    a, b = two_orgs[0], two_orgs[1]
    theirs = stored_item(store, b.id, "b's secret design")
    their_hash = hash_item(store, b.id, "b's hash")
    before = [store.item(b.id, theirs.id), store.item(b.id, their_hash.id)]
    for victim in (theirs, their_hash):
        assert store.item(a.id, victim.id) is None
        assert store.items_by_sha256(a.id, victim.sha256) == []
        for change in (
            {"tags": ["mine"]},
            {"title": "stolen"},
            {"storage_state": StorageState.ORIGINAL_DELETED, "blob_key": None},
            {"token": b"x", "ledger_index": 1, "serial": 1, "certified_at": clock()},
        ):
            with pytest.raises(ItemNotFound):
                store.update_item(a.id, victim.id, **change)
    assert store.items(a.id) == [] and store.count_items(a.id) == 0
    assert store.credit_entries(a.id) == []
    with pytest.raises(ItemNotFound):  # billing A for B's item
        store.append_credit_entries(
            [NewCreditEntry(a.id, "consume", "consume/x", units=-1, item_id=theirs.id)]
        )
    assert [store.item(b.id, theirs.id), store.item(b.id, their_hash.id)] == before
    assert {i.id for i in store.items(b.id)} == {theirs.id, their_hash.id}


def test_items_need_an_existing_organisation(store: EvidenceStore) -> None:
    with pytest.raises(OrganisationNotFound):
        hash_item(store, "org_nobody")


def test_listing_and_lookup_by_digest(store: EvidenceStore, two_orgs, clock) -> None:
    a = two_orgs[0]
    first = hash_item(store, a.id, "one")
    clock.advance(timedelta(seconds=1))
    second = hash_item(store, a.id, "two")
    clock.advance(timedelta(seconds=1))
    again = hash_item(store, a.id, "one")
    assert [i.id for i in store.items(a.id)] == [again.id, second.id, first.id]
    assert [i.id for i in store.items(a.id, limit=1, offset=1)] == [second.id]
    assert [i.id for i in store.items_by_sha256(a.id, digest("one").upper())] == [
        first.id,
        again.id,
    ]
    with pytest.raises(InvalidInput):
        store.items(a.id, limit=0)


# items: what the schema forbids


@pytest.mark.parametrize(
    "fields",
    [
        {"sha256": "00" * 31},
        {"sha256": "AB" * 32},
        {"sha512": "00" * 32},
        {"sm3": "zz" * 32},
        {"size": -1},
        {"file_name": "a\x00b"},
        {"tags": ("",)},
        {"tags": tuple(str(i) for i in range(33))},
        {"title": "x" * 10_001},
    ],
)
def test_new_items_are_validated(fields) -> None:
    base = {"mode": ItemMode.HASH_ONLY, "sha256": "00" * 32}
    with pytest.raises(InvalidInput):
        NewItem(**{**base, **fields})


def test_stored_items_need_their_original_and_hash_only_items_none() -> None:
    sha = "11" * 32
    with pytest.raises(InvalidInput):
        NewItem(ItemMode.STORED, sha, size=1)
    with pytest.raises(InvalidInput):
        NewItem(ItemMode.STORED, sha, size=1, blob_key="22" * 32)
    with pytest.raises(InvalidInput):
        NewItem(ItemMode.HASH_ONLY, sha, blob_key=sha)


def test_item_identity_never_changes(store: EvidenceStore, two_orgs, engine_db) -> None:
    a = two_orgs[0]
    item = stored_item(store, a.id)
    raw = engine_db.raw()
    for sql in (
        "DELETE FROM items",
        "UPDATE items SET sha256 = '00'",
        "UPDATE items SET org_id = 'org_other'",
        "UPDATE items SET mode = 'HASH_ONLY', blob_key = NULL, storage_state = NULL",
        "UPDATE items SET size = 1",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(sql)
    raw.close()
    for field in ("sha256", "org_id", "mode", "size", "id", "created_at"):
        with pytest.raises(InvalidInput):
            store.update_item(a.id, item.id, **{field: "x"})


def test_certified_items_are_frozen(store: EvidenceStore, two_orgs, clock) -> None:
    a = two_orgs[0]
    item = stored_item(store, a.id)
    item = store.update_item(a.id, item.id, title="fixed typo", statement="mine")
    assert item.title == "fixed typo"
    with pytest.raises(ItemImmutable):  # all four issuance fields at once, or none
        store.update_item(a.id, item.id, token=b"x")
    certify(store, a.id, item.id, clock)
    for change in (
        {"title": "changed"},
        {"statement": "changed"},
        {"depositor": "someone else"},
        {"file_name": "other.jpg"},
        {"token": b"other"},
        {"ledger_index": 8},
        {"serial": 2},
        {"certified_at": clock() + timedelta(days=1)},
    ):
        with pytest.raises(ItemImmutable):
            store.update_item(a.id, item.id, **change)
    assert store.update_item(a.id, item.id, tags=["kept"]).tags == ("kept",)


def test_originals_follow_the_storage_rules(store: EvidenceStore, two_orgs) -> None:
    a = two_orgs[0]
    item = stored_item(store, a.id)
    with pytest.raises(ItemImmutable):  # another file's content is not this item's original
        store.update_item(a.id, item.id, blob_key="ab" * 32)
    with pytest.raises(ItemImmutable):  # an active item holds its original
        store.update_item(a.id, item.id, blob_key=None)
    with pytest.raises(ItemImmutable):  # the state must keep or drop the original with it
        store.update_item(a.id, item.id, storage_state=StorageState.ORIGINAL_DELETED)
    assert store.blob_references(item.sha256) == 1
    deleted = store.update_item(
        a.id, item.id, storage_state=StorageState.ORIGINAL_DELETED, blob_key=None
    )
    assert deleted.blob_key is None and store.blob_references(item.sha256) == 0
    back = store.update_item(a.id, item.id, storage_state="active", blob_key=item.sha256)
    assert back.storage_state is StorageState.ACTIVE
    hashed = hash_item(store, a.id)
    for change in ({"blob_key": hashed.sha256}, {"storage_state": StorageState.ACTIVE}):
        with pytest.raises(ItemImmutable):
            store.update_item(a.id, hashed.id, **change)
    with pytest.raises(InvalidInput):
        store.update_item(a.id, hashed.id)


def test_blob_references_count_every_organisation(store: EvidenceStore, two_orgs) -> None:
    a, b = two_orgs[0], two_orgs[1]
    mine, theirs = stored_item(store, a.id, "same"), stored_item(store, b.id, "same")
    assert mine.blob_key == theirs.blob_key and store.blob_references(mine.blob_key) == 2


# credit entries


def entry(org_id: str, key: str, units: int = 1, kind: str = "purchase", **fields):
    return NewCreditEntry(org_id, kind, key, units=units, **fields)


def test_credit_entries_are_idempotent(store: EvidenceStore, two_orgs, clock) -> None:
    a = two_orgs[0]
    record = {"key": "purchase/lot1", "kind": "purchase", "units": 10}
    first = store.append_credit_entries(
        [entry(a.id, "purchase/lot1", 10, lot_id="lot1", record=record)]
    )
    assert first[0].inserted and first[0].entry.id == 1
    clock.advance(timedelta(minutes=5))
    again = store.append_credit_entries(
        [entry(a.id, "purchase/lot1", 10, lot_id="lot1", record=dict(record), note="retry")]
    )
    assert not again[0].inserted and again[0].entry == first[0].entry
    assert len(store.credit_entries(a.id)) == 1
    with pytest.raises(IdempotencyConflict):
        store.append_credit_entries([entry(a.id, "purchase/lot1", 11, lot_id="lot1")])
    with pytest.raises(IdempotencyConflict):
        store.append_credit_entries(
            [entry(a.id, "purchase/lot1", 10, lot_id="lot1", record={**record, "units": 9})]
        )
    same_batch = store.append_credit_entries([entry(a.id, "k2"), entry(a.id, "k2")])
    assert [r.inserted for r in same_batch] == [True, False]
    assert same_batch[0].entry == same_batch[1].entry
    assert [e.idempotency_key for e in store.credit_entries(a.id)] == ["purchase/lot1", "k2"]


def test_idempotency_keys_are_per_organisation(store: EvidenceStore, two_orgs) -> None:
    a, b = two_orgs[0], two_orgs[1]
    store.append_credit_entries([entry(a.id, "purchase/1", 5)])
    theirs = store.append_credit_entries([entry(b.id, "purchase/1", 7)])
    assert theirs[0].inserted and theirs[0].entry.units == 7  # never A's row
    assert [e.units for e in store.credit_entries(a.id)] == [5]
    assert [e.units for e in store.credit_entries(b.id)] == [7]


def test_a_batch_is_all_or_nothing(store: EvidenceStore, two_orgs) -> None:
    a = two_orgs[0]
    store.append_credit_entries([entry(a.id, "existing", 3)])
    for bad_batch in (
        [entry(a.id, "new-1"), entry(a.id, "existing", 4)],  # conflict at the end
        [entry(a.id, "new-1"), entry("org_nobody", "new-2")],  # unknown organisation
    ):
        with pytest.raises((IdempotencyConflict, OrganisationNotFound)):
            store.append_credit_entries(bad_batch)
        assert [e.idempotency_key for e in store.credit_entries(a.id)] == ["existing"]

    def refuse(org_id, earlier, added):
        assert [e.idempotency_key for e in earlier] == ["existing"]
        assert [e.idempotency_key for e in added] == ["new-1", "new-2"]
        if sum(e.units for e in earlier + added) < 0:
            raise EvidenceError("balance would be negative")

    with pytest.raises(EvidenceError, match="negative"):
        store.append_credit_entries(
            [entry(a.id, "new-1", -2, "consume"), entry(a.id, "new-2", -2, "consume")],
            check=refuse,
        )
    assert len(store.credit_entries(a.id)) == 1
    store.append_credit_entries(
        [entry(a.id, "new-1", -2, "consume"), entry(a.id, "new-2", -1, "consume")], check=refuse
    )
    assert [e.units for e in store.credit_entries(a.id)] == [3, -2, -1]
    assert store.verify_credit_chain() == 3


def test_credit_entries_are_validated() -> None:
    for bad in (
        {"kind": "Purchase"},
        {"kind": "drop table"},
        {"units": 1.5},
        {"units": True},
        {"idempotency_key": ""},
        {"idempotency_key": "k" * 201},
        {"period": -2},
        {"record": {"at": object()}},
    ):
        fields = {"org_id": "org_x", "kind": "purchase", "idempotency_key": "k", **bad}
        with pytest.raises((InvalidInput, ValueError)):
            NewCreditEntry(**fields)


def test_credit_entries_are_append_only(store: EvidenceStore, two_orgs, engine_db) -> None:
    a = two_orgs[0]
    store.append_credit_entries([entry(a.id, "one", 5), entry(a.id, "two", -1, "consume")])
    raw = engine_db.raw()
    for sql in (
        "UPDATE credit_entries SET units = 500",
        "UPDATE credit_entries SET idempotency_key = 'x' WHERE id = 2",
        "DELETE FROM credit_entries",
        "DELETE FROM credit_entries WHERE id = 2",
        # a second row for a used key, or an id out of sequence
        "INSERT INTO credit_entries (id, org_id, kind, units, idempotency_key, created_at,"
        f" chain_hash) VALUES (3, '{a.id}', 'purchase', 5, 'one', 'x', ?)",
        "INSERT INTO credit_entries (id, org_id, kind, units, idempotency_key, created_at,"
        f" chain_hash) VALUES (9, '{a.id}', 'purchase', 5, 'new', 'x', ?)",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(sql, (b"\0",) if "?" in sql else ())
    raw.close()
    assert [e.units for e in store.credit_entries(a.id)] == [5, -1]


def test_the_chain_detects_a_rewritten_entry(store: EvidenceStore, two_orgs, engine_db) -> None:
    a, b = two_orgs[0], two_orgs[1]
    store.append_credit_entries([entry(a.id, "one", 5), entry(b.id, "one", 2)])
    store.append_credit_entries([entry(a.id, "two", -1, "consume", item_id="itm_future")])
    assert store.verify_credit_chain() == 3
    raw = engine_db.raw()  # an attacker with the database: drop the trigger, rewrite
    raw.drop_trigger("credit_entries_no_update", "credit_entries")
    raw.execute("UPDATE credit_entries SET units = 50 WHERE id = 1")
    raw.close()
    with pytest.raises(EvidenceError, match="credit entry 1 does not match"):
        store.verify_credit_chain()


def test_two_writers_share_one_chain(store: EvidenceStore, two_orgs, engine_db) -> None:
    a = two_orgs[0]
    other = engine_db.open()  # e.g. the CLI while the server runs, or another node
    try:
        for n in range(5):
            writer = store if n % 2 else other
            writer.append_credit_entries([entry(a.id, f"k{n}", n)])
        assert [e.id for e in store.credit_entries(a.id)] == [1, 2, 3, 4, 5]
        assert [e.id for e in store.credit_entries(a.id, after_id=3)] == [4, 5]
        assert store.verify_credit_chain() == 5 == other.verify_credit_chain()
    finally:
        other.close()


def test_each_thread_has_its_own_connection(store: EvidenceStore, two_orgs) -> None:
    """Issue 13, item 7: evidence writes run in worker threads while the loop reads; a
    transaction open in one thread is never seen, or joined, by another."""
    import threading

    a = two_orgs[0]
    inside, release, seen = threading.Event(), threading.Event(), []

    def writer() -> None:
        with store._write() as conn:
            conn.execute(
                "INSERT INTO organisations (id, name, created_at)"
                " VALUES ('org_x', 'x', '2025-03-01T02:00:00.000Z')"
            )
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    seen.append(store.organisation("org_x"))  # uncommitted elsewhere: not visible here
    assert store.count_items(a.id) == 0  # and this thread's reads go on meanwhile
    release.set()
    thread.join(10)
    assert seen == [None] and store.organisation("org_x") is not None
    assert store._conn is not None and len(store.db._opened) == 2  # type: ignore[attr-defined]


def test_racing_writers_on_two_connections_never_overdraw(
    store: EvidenceStore, two_orgs, engine_db
) -> None:
    """Issue 16, item 4: the balance check and the append are one atomic step across
    processes and nodes (SQLite's write lock; PostgreSQL's advisory lock): 12 threads on
    two stores race for 5 units, exactly 5 win, the chain stays contiguous."""
    import threading

    a = two_orgs[0]
    store.append_credit_entries([entry(a.id, "lot", 5)])
    other = engine_db.open()

    def no_overdraft(org_id, existing, added) -> None:
        if sum(e.units for e in existing) + sum(e.units for e in added) < 0:
            raise EvidenceError("insufficient credits")

    won, lost, start = [], [], threading.Barrier(12)

    def spend(n: int) -> None:
        writer = store if n % 2 else other
        start.wait(10)
        try:
            writer.append_credit_entries(
                [entry(a.id, f"spend-{n}", -1, "consume")], check=no_overdraft
            )
            won.append(n)
        except EvidenceError:
            lost.append(n)

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(12)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(won) == 5 and len(lost) == 7
        assert sum(e.units for e in store.credit_entries(a.id)) == 0
        assert store.verify_credit_chain() == 6 == other.verify_credit_chain()
    finally:
        other.close()


def test_one_node_runs_each_background_job(store: EvidenceStore, engine_db, clock) -> None:
    """Issue 16, item 4: the renewal and webhook rounds run on the one holder of the job's
    lease; another node takes the job only once the holder's lease has run out."""
    other = engine_db.open()  # another node on the same database
    try:
        now = clock()
        soon, later = now + timedelta(seconds=30), now + timedelta(seconds=60)
        assert store.hold_job("webhooks", "node-a", now, soon)
        assert not other.hold_job("webhooks", "node-b", now, soon)
        assert other.hold_job("renewals", "node-b", now, soon)  # another job, free
        assert store.hold_job("webhooks", "node-a", now + timedelta(seconds=10), later)
        assert not other.hold_job("webhooks", "node-b", soon, later)  # renewed to `later`
        assert other.hold_job("webhooks", "node-b", later, later + timedelta(seconds=30))
        assert not store.hold_job("webhooks", "node-a", later, later + timedelta(seconds=30))
    finally:
        other.close()


def test_webhook_attempts_are_counted_until_delivered(store: EvidenceStore, two_orgs, clock):
    """Each attempt's outcome is recorded (the upsert counts on both engines); a delivered
    notice is due no more."""
    a = two_orgs[0]
    now = clock()
    store.put_webhook(a.id, "https://hooks.example/a", None, new_secret(), now)
    store.commit_change(
        a.id, notices=[StoredNotice(a.id, "low-balance/x/1/1", "balance.low", now, "x")]
    )
    [due] = store.due_deliveries(a.id, now, 10)
    assert due["attempts"] == 0
    for attempt in (1, 2):
        store.record_delivery(
            a.id,
            due["id"],
            now,
            status=503,
            error="busy",
            delivered=False,
            next_attempt_at=now,
            given_up=False,
        )
        [again] = store.due_deliveries(a.id, now, 10)
        assert again["attempts"] == attempt
    store.record_delivery(
        a.id,
        due["id"],
        now,
        status=200,
        error="",
        delivered=True,
        next_attempt_at=None,
        given_up=False,
    )
    assert store.due_deliveries(a.id, now + timedelta(days=1), 10) == []
