"""The issuance path in-process, on the real SoftHSM key and a real ledger (SQLite, and
PostgreSQL where the test is not about the SQLite file), with a ManualClock: ordering,
accuracy, serials, fail-closed clock and failed commits."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ledger.errors import LedgerWriteError
from ledger.store.base import Store
from ledger.store.postgres import PostgresStore
from ledger.store.sqlite import SqliteStore
from tests.support.databases import ENGINES
from tests.support.queries import failure_of, make_request, parse_response
from tsa_server.clock.base import ManualClock
from tsa_server.issuance.issuer import IssuanceSettings, Issuer
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.wiring import load_chain

PROFILE = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,))
T0 = datetime(2026, 11, 22, 12, 0, 0, 250_400, tzinfo=UTC)


@pytest.fixture
def sqlite_store(tmp_path):
    s = SqliteStore(tmp_path / "ledger.sqlite")
    yield s
    s.close()


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """The ledger on each backend (PostgreSQL: a schema of the test's own)."""
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "ledger.sqlite")
    else:
        s = PostgresStore(request.getfixturevalue("postgres_url"))
    yield s
    s.close()


@pytest.fixture
def clock():
    return ManualClock(T0, error_bound=timedelta(microseconds=300))


@pytest.fixture
def make_issuer(hsm_config, signer, clock):
    template = TokenTemplate(signer.key_spec, load_chain(hsm_config))

    def make(store, **settings) -> Issuer:
        return Issuer(
            template=template,
            signer=signer,
            clock=clock,
            store=store,
            profile=PROFILE,
            settings=IssuanceSettings(**settings),
        )

    return make


def tst_of(reply: bytes):
    token = parse_response(reply)["time_stamp_token"]
    return token["content"]["encap_content_info"]["content"].parsed


def issue_all(issuer: Issuer, bodies: list[bytes]) -> list[bytes]:
    async def run():
        return await asyncio.gather(*(issuer.issue(b) for b in bodies))

    return asyncio.run(run())


def test_granted_tokens_are_in_the_ledger_in_order(store, make_issuer) -> None:
    issuer = make_issuer(store)
    replies = issue_all(issuer, [make_request(b"%d" % i) for i in range(50)])
    assert all(failure_of(r)[0] == "granted" for r in replies)
    entries = list(store.entries())
    tokens = [parse_response(r)["time_stamp_token"].dump() for r in replies]
    assert [e.token for e in entries] == tokens
    assert [e.index for e in entries] == list(range(50))
    serials = [tst_of(r)["serial_number"].native for r in replies]
    assert len(set(serials)) == 50
    assert all(64 <= s.bit_length() <= 160 for s in serials)
    assert [e.serial for e in entries] == serials


def test_accuracy_covers_error_bound_and_ms_truncation(store, make_issuer) -> None:
    tst = tst_of(issue_all(make_issuer(store), [make_request()])[0])
    # 0.3 ms error bound + up to 1 ms lost by truncating to ms, rounded up to whole ms.
    assert tst["gen_time"].native == T0.replace(microsecond=250_000)
    assert tst["accuracy"].native == {"seconds": None, "millis": 2, "micros": None}


def test_gen_time_never_decreases_when_the_clock_steps_back(store, make_issuer, clock) -> None:
    issuer = make_issuer(store)
    first = tst_of(issue_all(issuer, [make_request()])[0])
    clock.set(T0 - timedelta(milliseconds=100))
    second = tst_of(issue_all(issuer, [make_request()])[0])
    assert second["gen_time"].native == first["gen_time"].native
    # Held 100.4 ms ahead of the clock: the stated accuracy must include that.
    assert second["accuracy"].native["millis"] >= 101
    gen_times = [e.gen_time_ms for e in store.entries()]
    assert gen_times == sorted(gen_times)


def test_step_back_beyond_max_accuracy_refuses(store, make_issuer, clock) -> None:
    issuer = make_issuer(store, max_accuracy=timedelta(milliseconds=50))
    issue_all(issuer, [make_request()])
    clock.set(T0 - timedelta(seconds=2))
    status, failures = failure_of(issue_all(issuer, [make_request()])[0])
    assert (status, failures) == ("rejection", {"time_not_available"})
    assert store.size() == 1


def test_unusable_clock_gives_time_not_available_and_no_entry(store, make_issuer, clock) -> None:
    issuer = make_issuer(store)
    clock.make_unusable("NTP silent")
    replies = issue_all(issuer, [make_request() for _ in range(3)])
    assert {failure_of(r) for r in replies} == {("rejection", frozenset({"time_not_available"}))}
    assert store.size() == 0
    clock.make_usable()
    assert failure_of(issue_all(issuer, [make_request()])[0])[0] == "granted"


def test_failed_commit_is_system_failure_and_releases_nothing(tmp_path, make_issuer) -> None:
    path = tmp_path / "ledger.sqlite"
    store = SqliteStore(path)
    issuer = make_issuer(store)
    issue_all(issuer, [make_request()])
    # A writer the lock file cannot see (another host on a shared filesystem) claims the
    # ledger: a real epoch bump, so our commits must now fail (L-08 fencing).
    usurper = sqlite3.connect(path)
    usurper.execute("UPDATE seq SET epoch = epoch + 1")
    usurper.commit()
    replies = issue_all(issuer, [make_request(b"%d" % i) for i in range(5)])
    assert {failure_of(r) for r in replies} == {("rejection", frozenset({"system_failure"}))}
    assert all(parse_response(r)["time_stamp_token"].native is None for r in replies)
    assert store.size() == 1
    assert issuer.last_failure is not None
    usurper.close()
    store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_serials_are_never_reused_across_restarts(tmp_path, make_issuer, engine, request) -> None:
    def reopen() -> Store:
        if engine == "sqlite":
            return SqliteStore(tmp_path / "ledger.sqlite")
        return PostgresStore(request.getfixturevalue("postgres_url"))

    seen = set()
    for _ in range(3):
        store = reopen()
        issuer = make_issuer(store)
        # Tokens of a discarded batch consume serials too: simulate by issuing then
        # "crashing" (dropping the issuer without a clean shutdown).
        for reply in issue_all(issuer, [make_request(b"%d" % i) for i in range(10)]):
            serial = tst_of(reply)["serial_number"].native
            assert serial not in seen
            seen.add(serial)
        store.close()
    store = reopen()
    assert store.size() == 30
    store.close()


def test_a_second_writer_is_refused_while_the_first_runs(sqlite_store, tmp_path) -> None:
    with pytest.raises(LedgerWriteError, match="in use by another process"):
        SqliteStore(sqlite_store.path)
    sqlite_store.close()
    SqliteStore(sqlite_store.path).close()  # free again once the first writer is gone


def test_batches_are_bounded(store, make_issuer) -> None:
    issuer = make_issuer(store, max_batch=7)
    replies = issue_all(issuer, [make_request(b"%d" % i) for i in range(30)])
    assert all(failure_of(r)[0] == "granted" for r in replies)
    assert store.size() == 30


def test_ledger_rejects_update_and_delete(sqlite_store, make_issuer) -> None:
    issue_all(make_issuer(sqlite_store), [make_request()])
    conn = sqlite3.connect(sqlite_store.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE entries SET token = x'00' WHERE idx = 0")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM entries")
    with pytest.raises(sqlite3.IntegrityError, match="contiguous"):
        conn.execute(
            "INSERT INTO entries (idx, token, gen_time, serial, leaf_hash, chain_hash)"
            " VALUES (5, x'00', 0, 'ff', x'00', x'00')"
        )
    conn.close()


def test_no_token_once_the_certificate_has_expired(store, make_issuer, clock) -> None:
    issuer = make_issuer(store, certificate_not_after=T0 + timedelta(seconds=1))
    assert failure_of(issue_all(issuer, [make_request()])[0])[0] == "granted"
    assert asyncio.run(issuer.problems()) == []
    clock.advance(timedelta(seconds=1))
    reply = issue_all(issuer, [make_request()])[0]
    assert failure_of(reply) == ("rejection", frozenset({"system_failure"}))
    assert store.size() == 1
    assert any("expired" in p for p in asyncio.run(issuer.problems()))


def test_nonce_of_256_bits_is_echoed_and_257_refused(store, make_issuer) -> None:
    issuer = make_issuer(store)
    biggest = (1 << 256) - 1  # 33 content bytes: a leading 00 keeps it positive
    reply = issue_all(issuer, [make_request(nonce=biggest)])[0]
    assert tst_of(reply)["nonce"].native == biggest
    refused = issue_all(issuer, [make_request(nonce=1 << 256)])[0]
    assert failure_of(refused) == ("rejection", frozenset({"bad_request"}))


def test_timestamp_a_digest_for_internal_services(store, make_issuer) -> None:
    import hashlib

    issuer = make_issuer(store)

    async def run():
        return await issuer.timestamp(hashlib.sha256(b"deposit").digest())

    outcome = asyncio.run(run())
    assert outcome.token is not None and outcome.index == 0
    assert store.entry(0).token == outcome.token
    tst = tst_of(outcome.reply)
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(b"deposit").digest()
    with pytest.raises(ValueError, match="32 bytes"):
        asyncio.run(issuer.timestamp(b"short"))
    with pytest.raises(ValueError, match="not accepted"):
        asyncio.run(issuer.timestamp(bytes(20), "sha1"))


def test_the_committer_commits_only_what_continues_the_durable_sequence(tmp_path) -> None:
    """`Committer` decides each batch it is handed: the group that continues the
    durable sequence commits; a batch whose signing failed, and everything after it,
    fails with that error; a batch sequenced on top of a failure the loop already saw
    fails without an error of its own while the batches sequenced after the restart
    still commit; a failed commit fails the whole group."""
    from ledger.store.base import NewEntry
    from tsa_server.issuance.commit import Batch, Committer

    def batch(first: int, count: int, error: BaseException | None = None) -> Batch:
        entries = [
            NewEntry(b"t%d" % i, 1, i + 1, "sha256", b"") for i in range(first, first + count)
        ]
        return Batch([object()] * count, first, 1, [], [], [], [], True, entries, error)

    store = SqliteStore(tmp_path / "ledger.sqlite")
    epoch = store.claim_epoch().epoch
    committer = Committer(store, epoch, 0, lambda report: None)
    try:
        a, b = batch(0, 2), batch(2, 3)
        report = committer._commit([a, b])
        assert (report.committed, report.failed, report.error, report.durable_index) == (
            [a, b],
            [],
            None,
            5,
        )
        refused = RuntimeError("signing failed")
        c, d, e = batch(5, 1), batch(6, 2, refused), batch(8, 1)
        report = committer._commit([c, d, e])
        assert report.committed == [c] and report.failed == [d, e]
        assert report.error is refused and report.durable_index == 6
        # Sequenced before the loop restarted the sequence at 6, and handed over in the
        # same round as the first batch sequenced after the restart: the stale one
        # fails on its own, the new one commits.
        stale, restarted = batch(9, 1), batch(6, 1)
        report = committer._commit([stale, restarted])
        assert report.committed == [restarted] and report.failed == [stale]
        assert report.error is None and report.durable_index == 7
        assert store.size() == 7
        conn = sqlite3.connect(store.path)  # another writer fences this one off (L-08)
        conn.execute("UPDATE seq SET epoch = epoch + 1")
        conn.commit()
        conn.close()
        f = batch(7, 2)
        report = committer._commit([f])
        assert report.committed == [] and report.failed == [f]
        assert isinstance(report.error, LedgerWriteError) and report.durable_index == 7
        assert store.size() == 7
    finally:
        committer.close()
        store.close()
