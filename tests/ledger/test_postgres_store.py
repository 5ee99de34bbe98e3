"""What only the PostgreSQL store has: fencing between connections (other nodes), the
writer's advisory lock, logs sharing a database, migrations, the database's own
append-only rules, reconnecting after a dropped connection, and the deeper tree strata."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ledger.errors import LedgerError, LedgerWriteError
from ledger.hashing import leaf_hash
from ledger.merkle import root_of
from ledger.proofs import verify_inclusion
from ledger.store.base import NewEntry, SignedCheckpoint
from ledger.store.postgres import (
    SCHEMA_VERSION,
    PostgresReader,
    PostgresStore,
    SchemaVersionError,
    migrate,
)
from tests.support.postgres import PostgresServer


def batch(first: int, count: int, tag: bytes = b"t") -> list[NewEntry]:
    return [
        NewEntry(tag + b"%d" % i, 1_000 + i, (1 << 130) + i, "sha256", bytes([i % 7]) * 32)
        for i in range(first, first + count)
    ]


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


def drop_other_connections(url: str) -> int:
    """What a restarted server or a broken network does to every store's session."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


# Fencing and the writer lock


def test_fencing_across_connections(postgres_url: str) -> None:
    old = PostgresStore(postgres_url)
    epoch = old.claim_epoch().epoch
    old.append(epoch, 0, batch(0, 5))
    # Another node forces a take-over (the old writer still holds its lock).
    new = PostgresStore(postgres_url, exclusive=False)
    state = new.claim_epoch()
    assert (state.next_index, state.chain_head) == (5, old.chain_head(5))
    with pytest.raises(LedgerWriteError, match="another writer has taken over"):
        old.append(epoch, 5, batch(5, 3))
    new.append(state.epoch, 5, batch(5, 3, b"n"))
    assert old.size() == 8  # the deposed writer's connection still reads
    assert [e.token for e in old.entries(5)] == [n.token for n in batch(5, 3, b"n")]
    old.close()
    new.close()


def test_append_waits_for_a_concurrent_claim(postgres_url: str) -> None:
    """A claim takes the log's row lock: an append holding it commits first, and the
    next one is fenced."""
    store = PostgresStore(postgres_url)
    epoch = store.claim_epoch().epoch
    with psycopg.connect(postgres_url) as other:
        other.execute("SELECT 1 FROM ledger_logs WHERE log = 'tokens' FOR UPDATE")
        failure: list[BaseException] = []

        def append() -> None:
            try:
                store.append(epoch, 0, batch(0, 2))
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=append)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # waiting for the row lock
        other.execute("UPDATE ledger_logs SET epoch = epoch + 1 WHERE log = 'tokens'")
        other.commit()
        thread.join(10)
    assert failure and isinstance(failure[0], LedgerWriteError)
    assert store.size() == 0
    store.close()


def test_a_second_writer_is_refused(postgres_url: str) -> None:
    first = PostgresStore(postgres_url)
    with pytest.raises(LedgerWriteError, match="in use by another writer"):
        PostgresStore(postgres_url)
    other_log = PostgresStore(postgres_url, log="ops")  # another log: another writer
    reader = PostgresReader(postgres_url)  # readers take no lock
    first.close()
    second = PostgresStore(postgres_url)
    assert second.claim_epoch().epoch == 1
    for handle in (second, other_log, reader):
        handle.close()


def test_logs_share_a_database_independently(postgres_url: str) -> None:
    tokens = PostgresStore(postgres_url, log="tokens")
    ops = PostgresStore(postgres_url, log="node-2/ops")
    tokens.append(tokens.claim_epoch().epoch, 0, batch(0, 300))
    ops_epoch = ops.claim_epoch().epoch
    ops.append(ops_epoch, 0, batch(0, 20, b"o"))  # same serials: unique per log only
    ops.add_checkpoint(SignedCheckpoint(20, ops.root(20), ops.chain_head(20), "ops"))
    tokens.add_checkpoint(SignedCheckpoint(10, tokens.root(10), tokens.chain_head(10), "t"))
    assert (tokens.size(), ops.size()) == (300, 20)
    assert tokens.root(300) == root_of([leaf_hash(e.token) for e in batch(0, 300)])
    assert ops.root(20) == root_of([leaf_hash(e.token) for e in batch(0, 20, b"o")])
    assert tokens.tile_hashes(1, 0, 1) == root_of([leaf_hash(e.token) for e in batch(0, 256)])
    assert ops.tile_hashes(1, 0, 1) == b""
    assert tokens.checkpoint_sizes() == [10] and ops.checkpoint_sizes() == [20]
    assert ops.entry_by_serial((1 << 130) + 3) == ops.entry(3)
    assert PostgresReader(postgres_url, log="absent").size() == 0
    assert ops.claim_epoch().epoch == ops_epoch + 1
    tokens.close()
    ops.close()


def test_concurrent_checkpoints_cannot_both_win(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    with psycopg.connect(postgres_url) as other:
        other.execute(
            "INSERT INTO ledger_checkpoints (log, size, root, chain_head, note) "
            "VALUES ('tokens', 10, %s, %s, 'other')",
            (bytes(32), bytes(32)),
        )
        failure: list[BaseException] = []

        def archive() -> None:
            try:
                store.add_checkpoint(SignedCheckpoint(5, bytes(32), bytes(32), "late"))
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=archive)
        thread.start()
        time.sleep(0.3)
        other.commit()
        thread.join(10)
    assert failure and isinstance(failure[0], LedgerWriteError)
    assert store.checkpoint_sizes() == [10]
    store.close()


# Migrations and the schema


def test_migrations_are_versioned_and_idempotent(postgres_url: str) -> None:
    with pytest.raises(SchemaVersionError, match="run the migrations"):
        PostgresReader(postgres_url)
    assert migrate(postgres_url) == SCHEMA_VERSION
    assert migrate(postgres_url) == 0
    store = PostgresStore(postgres_url)  # opening migrates too: nothing left to do
    store.close()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [row[0] for row in rows] == list(range(1, SCHEMA_VERSION + 1))


def test_concurrent_migrations_apply_once(postgres_url: str) -> None:
    applied: list[int] = []

    def run() -> None:
        applied.append(migrate(postgres_url))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(applied) == SCHEMA_VERSION  # each migration applied by one of them
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [row[0] for row in rows] == list(range(1, SCHEMA_VERSION + 1))


def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    migrate(postgres_url)
    execute(postgres_url, f"INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION + 1})")
    for opener in (PostgresReader, PostgresStore, migrate):
        with pytest.raises(LedgerError, match="newer than this code knows"):
            opener(postgres_url)


def test_a_server_without_durable_commits_is_refused(postgres_url: str) -> None:
    migrate(postgres_url)
    careless = postgres_url + "%20-csynchronous_commit%3Doff"
    with pytest.raises(LedgerWriteError, match="durable"):
        PostgresStore(careless)
    PostgresReader(careless).close()  # reading is fine


def test_schemas_hold_distinct_ledgers(postgres: PostgresServer) -> None:
    """Same database, same log name, two schemas: two ledgers, two writers."""
    first = PostgresStore(postgres.create_schema())
    second = PostgresStore(postgres.create_schema())
    first.append(first.claim_epoch().epoch, 0, batch(0, 3))
    assert (first.size(), second.size()) == (3, 0)
    second.add_checkpoint(SignedCheckpoint(1, bytes(32), bytes(32), "one"))
    first.add_checkpoint(SignedCheckpoint(1, bytes(32), bytes(32), "one"))
    first.close()
    second.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_entries SET token = 'x' WHERE idx = 1",
        "DELETE FROM ledger_entries WHERE idx = 2",
        "TRUNCATE ledger_entries CASCADE",
        "UPDATE ledger_nodes SET hash = hash",
        "DELETE FROM ledger_nodes",
        "UPDATE ledger_checkpoints SET note = 'forged'",
        "DELETE FROM ledger_checkpoints",
        "DELETE FROM ledger_logs",
        "UPDATE ledger_logs SET epoch = 0",
        "UPDATE ledger_logs SET next_idx = 1",
        "INSERT INTO ledger_entries SELECT log, idx + 2, token, gen_time, serial + 1000, "
        "imprint_alg, imprint, leaf_hash, chain_hash FROM ledger_entries WHERE idx = 299",
        "INSERT INTO ledger_entries SELECT log, 300, token, 0, serial + 1000, "
        "imprint_alg, imprint, leaf_hash, chain_hash FROM ledger_entries WHERE idx = 299",
        "INSERT INTO ledger_checkpoints VALUES ('tokens', 3, '\\x00', '\\x00', 'old', NULL)",
    ],
)
def test_the_database_keeps_the_ledger_append_only(postgres_url: str, sql: str) -> None:
    store = PostgresStore(postgres_url)
    store.append(store.claim_epoch().epoch, 0, batch(0, 300))
    store.add_checkpoint(SignedCheckpoint(5, bytes(32), bytes(32), "five"))
    with pytest.raises(psycopg.errors.IntegrityError):
        execute(postgres_url, sql)
    assert store.size() == 300
    assert store.root(300) == root_of([leaf_hash(e.token) for e in batch(0, 300)])
    store.close()


# Reconnecting


def test_dropped_connections_are_replaced(postgres_database_url: str) -> None:
    postgres_url = postgres_database_url
    store = PostgresStore(postgres_url)
    reader = PostgresReader(postgres_url)
    epoch = store.claim_epoch().epoch
    store.append(epoch, 0, batch(0, 10))
    assert drop_other_connections(postgres_url) == 2
    store.append(epoch, 10, batch(10, 10))  # failed before COMMIT: retried on a new session
    assert reader.size() == 20
    assert drop_other_connections(postgres_url) == 2
    assert store.inclusion_proof(3, 20) == reader.inclusion_proof(3, 20)
    with pytest.raises(LedgerWriteError, match="in use by another writer"):
        PostgresStore(postgres_url)  # the new session holds the writer lock again
    store.close()
    reader.close()
    with pytest.raises(LedgerError, match="closed"):
        reader.size()


def test_a_deposed_writer_does_not_come_back(postgres_database_url: str) -> None:
    postgres_url = postgres_database_url
    old = PostgresStore(postgres_url)
    epoch = old.claim_epoch().epoch
    old.append(epoch, 0, batch(0, 4))
    drop_other_connections(postgres_url)  # the old node loses its session (and lock)
    new = PostgresStore(postgres_url)
    new.claim_epoch()
    with pytest.raises(LedgerWriteError, match="in use by another writer"):
        old.append(epoch, 4, batch(4, 1))
    new.close()
    with pytest.raises(LedgerWriteError, match="another writer has taken over"):
        old.append(epoch, 4, batch(4, 1))  # the lock is free now; the epoch fence holds
    assert old.size() == 4
    old.close()


# The tree beyond one tile level


def test_deep_strata_across_many_batches(postgres_url: str) -> None:
    """66,000 entries: level-16 nodes (tile level 2) written as batches complete them."""
    store = PostgresStore(postgres_url)
    epoch = store.claim_epoch().epoch
    entries = [NewEntry(b"%d" % i, i, i + 1, "sha256", b"") for i in range(66_000)]
    index = 0
    for size in [1, 255, 4096, 60_000, 1648]:
        store.append(epoch, index, entries[index : index + size])
        index += size
    leaves = [leaf_hash(e.token) for e in entries]
    assert store.tile_hashes(2, 0, 1) == root_of(leaves[:65_536])
    assert len(store.tile_hashes(1, 0, 66_000 >> 8)) == 32 * (66_000 >> 8)
    for size in (65_535, 65_536, 65_537, 66_000):
        assert store.root(size) == root_of(leaves[:size])
    root = root_of(leaves)
    for leaf in (0, 65_535, 65_536, 65_999):
        verify_inclusion(leaf, 66_000, leaves[leaf], store.inclusion_proof(leaf, 66_000), root)
    store.close()
