"""EvidenceService and the renewal runner in-process: the real SoftHSM key and Issuer,
real SQLite (evidence store, token ledger, operations log), real blob store, and one
ManualClock that is both the TSA's clock and the service's `now` (injectable time).

Covers the persistence side of docs/spec/evidence.md: deposits (T-3, T-4, T-6, T-9),
renewals applied to the store (R-1, R-2, R-4, R-5 with an interrupted run, R-6),
reinstatement (R-14), purge (R-15) with deduplicated blobs, lot lapse (T-7), stale
reservations refunded, and the store's atomic credit check against a stale writer."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.store.sqlite import SqliteStore
from tests.support.databases import EngineDatabase
from tsa_server.accounts.service import Accounts
from tsa_server.clock.base import ManualClock
from tsa_server.evidence.blobs import FileBlobStore
from tsa_server.evidence.fee_items import new_credit_entry
from tsa_server.evidence.renewal_runner import RenewalRunner, RenewalScheduler
from tsa_server.evidence.service import (
    Change,
    DepositSpec,
    EvidenceService,
    StaleChange,
    atomic_check,
)
from tsa_server.fees import (
    Artefact,
    DepositForm,
    Digests,
    FieldError,
    GraceExpired,
    InsufficientCredits,
    Mode,
    OriginalLocked,
    StateError,
    add_months,
    beijing,
    reserve,
)
from tsa_server.issuance.issuer import IssuanceSettings, Issuer
from tsa_server.issuance.opslog import OpsLog
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.wiring import load_chain

PROFILE = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,))
T0 = beijing(2024, 3, 1, 10, 0)  # a CURRENT-epoch deposit
FORM = DepositForm(depositor="张三", work_content="product photos", statement="mine")
MB = 2**20


class World:
    def __init__(self, tmp_path: Path, hsm_config, signer, engine_db: EngineDatabase) -> None:
        self.clock = ManualClock(T0.astimezone(UTC))
        self.ledger = SqliteStore(tmp_path / "ledger.sqlite")
        self.ops_store = SqliteStore(tmp_path / "ops.sqlite")
        self.issuer = Issuer(
            template=TokenTemplate(signer.key_spec, load_chain(hsm_config)),
            signer=signer,
            clock=self.clock,
            store=self.ledger,
            profile=PROFILE,
            settings=IssuanceSettings(),
        )
        self.store = engine_db.open(now=self.now)
        self.blobs = FileBlobStore(tmp_path / "blobs")
        self.service = EvidenceService(
            self.store,
            self.blobs,
            self.issuer.timestamp,
            ops=OpsLog(self.ops_store),
            now=self.now,
        )
        self.accounts = Accounts(self.store, now=self.now)
        self.runner = RenewalRunner(self.service)

    def now(self) -> datetime:
        return self.clock.now()

    def at(self, t: datetime) -> None:
        self.clock.set(t.astimezone(UTC))

    def org(self, units: int = 0) -> str:
        org = self.accounts.create_organisation("org").id
        if units:
            self.service.grant_lot(org, units, "first")
        return org

    def deposit(self, org: str, specs: list[DepositSpec]):
        return asyncio.run(self.service.deposit(org, specs))

    def hash_only(self, org: str, text: bytes = b"x"):
        import hashlib

        spec = DepositSpec(Mode.HASH_ONLY, Digests(hashlib.sha256(text).hexdigest()), FORM)
        return self.deposit(org, [spec])

    def stored(self, org: str, data: bytes, *, size: int | None = None):
        """A stored deposit of `data`; `size` declares another size to the fee rules
        (a 500 MB original without writing 500 MB: the rules only see the number)."""
        ref = self.blobs.put(data)
        digests = Digests(ref.sha256, ref.sha512, ref.sm3)
        spec = DepositSpec(Mode.STORED, digests, FORM, size or ref.size, (), ref)
        return self.deposit(org, [spec])

    def kinds(self, org: str) -> list[str]:
        return [e.kind for e in self.store.credit_entries(org)]

    def close(self) -> None:
        self.store.close()
        self.ledger.close()
        self.ops_store.close()


@pytest.fixture
def world(tmp_path: Path, hsm_config, signer, engine_db):
    w = World(tmp_path, hsm_config, signer, engine_db)
    yield w
    w.close()


def test_a_deposit_uses_one_unit_and_lands_in_ledger_and_ops_log(world: World) -> None:
    org = world.org(units=3)
    result = world.hash_only(org, b"photo")
    [item] = result.items
    assert result.failures == () and world.service.balance(org) == 2  # T-3
    assert item.certified_at == world.now() and item.token is not None
    entry = world.ledger.entry_by_serial(item.serial)
    assert entry is not None and entry.index == item.ledger_index and entry.token == item.token
    terms = world.store.item_terms(org, item.id)
    event = json.loads(list(world.ops_store.entries())[terms["ops_index"]].token)
    assert event["kind"] == "evidence_item" and event["record_sha256"] == terms["record_sha256"]
    assert world.kinds(org) == ["purchase", "reserve", "consume"]
    [notice] = world.service.notices(org)
    assert notice.kind == "item.certified" and notice.subject == item.id
    assert world.store.verify_credit_chain() == 3


def test_a_batch_is_all_or_nothing_and_failures_are_refunded(world: World) -> None:
    org = world.org(units=2)
    size = world.ledger.size()
    specs = [DepositSpec(Mode.HASH_ONLY, Digests(f"{i:064x}"), FORM) for i in range(3)]
    with pytest.raises(InsufficientCredits) as refused:  # T-4
        world.deposit(org, specs)
    assert (refused.value.needed, refused.value.available) == (3, 2)
    assert world.ledger.size() == size and world.kinds(org) == ["purchase"]

    world.clock.make_unusable("no NTP")  # T-6: certification fails after reservation
    result = world.deposit(org, specs[:2])
    assert result.items == () and len(result.failures) == 2
    assert world.service.balance(org) == 2
    assert world.kinds(org) == ["purchase", "reserve", "refund", "refund"]
    world.clock.make_usable()
    assert len(world.deposit(org, specs[:2]).items) == 2 and world.service.balance(org) == 0

    with pytest.raises(FieldError):
        world.deposit(org, [])


def test_a_stale_writer_cannot_overdraw(world: World, engine_db) -> None:
    org = world.org(units=1)
    other_store = engine_db.open(now=world.now)  # another process, or another node
    try:
        other = EvidenceService(other_store, world.blobs, world.issuer.timestamp, now=world.now)
        stale = reserve(other.wallet(org), "bat_stale", ["itm_stale"], world.now())
        world.hash_only(org, b"first")  # the last unit goes meanwhile
        with pytest.raises(StaleChange):
            other_store.commit_change(
                org, entries=[new_credit_entry(org, e) for e in stale], check=atomic_check
            )
        with pytest.raises(InsufficientCredits):  # recomputed from the new state
            other._commit(
                org, lambda w: Change(reserve(w, "bat_stale", ["itm_stale"], world.now()))
            )
        assert world.service.balance(org) == 0
        assert world.kinds(org) == ["purchase", "reserve", "consume"]
    finally:
        other_store.close()


def test_renewals_at_expiry_and_an_interrupted_run_debits_once(world: World) -> None:
    org = world.org(units=1)
    [a] = world.stored(org, b"A", size=500 * MB).items  # fee 3, certified first
    world.clock.advance(timedelta(seconds=1))
    world.service.grant_lot(org, 1, "second")
    [b] = world.stored(org, b"B").items  # fee 1
    fa = world.service.fee_item(org, a.id)
    fb = world.service.fee_item(org, b.id)
    assert fa.storage.term.fee == 3 and fa.storage.expires_at == add_months(T0, 12)  # LARGE
    assert fb.storage.expires_at == add_months(fb.certified_at, 36)  # SMALL
    # lots lapse after 12 months: a fresh lot pays the renewal at A's expiry
    world.at(add_months(T0, 12) - timedelta(days=1))
    world.service.grant_lot(org, 4, "renewals")
    world.at(fa.storage.expires_at - timedelta(seconds=1))  # nothing yet
    report = world.runner.run()
    assert report.renewed == report.expired == 0

    crashes = []

    def crash(org_id, step) -> None:
        if step.entries and step.entries[0].kind == "renew" and not crashes:
            crashes.append(step)
            raise RuntimeError("power cut right after the commit")

    world.at(fa.storage.expires_at)  # at exactly the expiry instant
    interrupted = RenewalRunner(world.service, on_step=crash).run()
    assert interrupted.errors and crashes
    report = world.runner.run()  # the repeat finds the period paid
    report = world.runner.run()
    renews = [e for e in world.store.credit_entries(org) if e.kind == "renew"]
    assert len(renews) == 1 and renews[0].units == -3 and renews[0].period == 1
    fa = world.service.fee_item(org, a.id)
    assert fa.storage.period == 1 and fa.storage.expires_at == add_months(T0, 24)
    assert world.service.balance(org) == 1

    # R-2 at A's next expiry: the balance (1) is short of 3: EXPIRED, nothing debited
    world.at(add_months(T0, 24))
    report = world.runner.run()
    assert report.expired == 1 and report.debited_units == 0
    fa = world.service.fee_item(org, a.id)
    assert fa.status.value == "EXPIRED"
    with pytest.raises(OriginalLocked):  # S-10: the original is locked ...
        world.service.open_original(org, a.id)
    assert world.service.token(org, a.id) == a.token  # ... the token is not
    assert Artefact.TOKEN.value == "token"


def test_reinstate_within_grace_then_purge_keeps_shared_blobs(world: World) -> None:
    org = world.org(units=1)
    other = world.org(units=1)
    [item] = world.stored(org, b"shared bytes").items
    [theirs] = world.stored(other, b"shared bytes").items
    expiry = world.service.fee_item(org, item.id).storage.expires_at
    world.at(expiry)
    report = world.runner.run()
    assert report.expired == 2  # both accounts are short (their lots lapsed)

    world.at(expiry + timedelta(days=10))
    with pytest.raises(InsufficientCredits):
        world.service.reinstate(org, item.id)
    world.service.grant_lot(org, 5, "top-up")
    world.service.reinstate(org, item.id)  # pays the missed period from expiry
    fee = world.service.fee_item(org, item.id)
    assert fee.status.value == "ACTIVE" and fee.storage.period == 1
    assert fee.storage.expires_at == add_months(item.certified_at, 48)
    assert world.service.balance(org) == 4
    assert [e.kind for e in world.store.credit_entries(org)][-1] == "reinstate"
    with world.service.open_original(org, item.id)[1] as handle:
        assert handle.read() == b"shared bytes"

    # the other account's item is purged after grace; the blob stays (still held)
    world.at(expiry + timedelta(days=90))
    with pytest.raises(GraceExpired):
        world.service.reinstate(other, theirs.id)
    report = world.runner.run()
    assert report.purged == 1
    assert world.service.fee_item(other, theirs.id).status.value == "PURGED"
    assert world.blobs.exists(item.sha256)
    assert world.kinds(other)[-1] == "purge"

    world.service.delete_original(org, item.id, downloaded_confirmed=True)
    assert not world.blobs.exists(item.sha256)  # nobody holds it any more
    with pytest.raises(StateError):
        world.service.reinstate(org, item.id)


def test_lapses_reminders_forecast_and_stale_reservations(world: World) -> None:
    org = world.org(units=4)
    [item] = world.stored(org, b"doc").items
    # a reservation whose deposit died before certification
    world.service._commit(org, lambda w: Change(reserve(w, "bat_dead", ["itm_dead"], world.now())))
    assert world.service.balance(org) == 2
    world.clock.advance(timedelta(minutes=20))
    report = world.runner.run()
    assert report.refunded == 1 and world.service.balance(org) == 3
    assert world.runner.run().refunded == 0

    # P-8: a reminder 30 days before the lot lapses; T-7: the lapse entry at the instant
    lapse = add_months(T0, 12)
    world.at(lapse - timedelta(days=30))
    report = world.runner.run()
    kinds = {n.kind for n in world.service.notices(org)}
    assert "lot_lapse.coming" in kinds and report.notices >= 1
    world.at(lapse)
    report = world.runner.run()
    assert report.lapsed == 1 and world.service.balance(org) == 0
    lapse_entry = world.store.credit_entries(org)[-1]
    assert lapse_entry.kind == "lapse" and lapse_entry.units == -3

    # REC-3: the storage renewal shows in the forecast as uncovered, and is reminded
    expiry = world.service.fee_item(org, item.id).storage.expires_at
    world.at(expiry - timedelta(days=7))
    fc = world.service.forecast(org)
    assert fc.obligations[0].due_at == expiry and not fc.obligations[0].covered
    assert fc.low_balance and fc.shortfall >= 1
    due = world.service.reminders(org)
    assert {n.kind.value for n in due} >= {"expiry.coming", "balance.low"}


def test_the_scheduler_runs_at_start_and_every_interval(world: World) -> None:
    org = world.org(units=0)
    world.service.grant_lot(org, 2, "x")
    seen: list[datetime] = []
    instants = iter([add_months(T0, 12), add_months(T0, 12) + timedelta(seconds=1)])

    def clock() -> datetime:
        t = next(instants, add_months(T0, 13))
        seen.append(t)
        return t

    async def main() -> None:
        scheduler = RenewalScheduler(world.runner, 0.05, now=clock)
        scheduler.start()
        deadline = asyncio.get_running_loop().time() + 20  # each run commits: slow on a busy box
        while len(seen) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await scheduler.stop()
        assert scheduler.last is not None

    asyncio.run(main())
    assert len(seen) >= 3  # at start, then again at each interval
    assert world.kinds(org) == ["purchase", "lapse"]  # the lapse once, however often


def test_auto_renew_off_expires_without_a_debit(world: World) -> None:
    org = world.org(units=1)
    [item] = world.stored(org, b"switch me off").items
    expiry = world.service.fee_item(org, item.id).storage.expires_at
    world.at(expiry - timedelta(days=1))
    world.service.grant_lot(org, 5, "plenty")
    world.service.set_auto_renew(org, item.id, False)
    world.at(expiry)
    report = world.runner.run()
    assert report.expired == 1 and report.debited_units == 0
    assert world.service.fee_item(org, item.id).status.value == "EXPIRED"
    assert world.service.balance(org) == 5
    notices = {n.kind for n in world.service.notices(org)}
    assert "renewal.failed" in notices
    [plain] = world.hash_only(org, b"nothing stored").items
    with pytest.raises(StateError):  # hash-only items have no storage to renew (S-1)
        world.service.set_auto_renew(org, plain.id, False)


def test_an_item_stored_without_the_service_gets_its_first_term(world: World) -> None:
    from tsa_server.evidence.fee_items import token_facts
    from tsa_server.evidence.records import ItemMode, NewItem

    org = world.org()
    ref = world.blobs.put(b"imported original")
    issued = asyncio.run(world.issuer.timestamp(bytes.fromhex(ref.sha256), "sha256"))
    serial, gen_time = token_facts(issued.token)
    item = world.store.insert_item(
        org, NewItem(ItemMode.STORED, ref.sha256, ref.size, blob_key=ref.sha256)
    )
    world.store.update_item(
        org,
        item.id,
        token=issued.token,
        ledger_index=issued.index,
        serial=serial,
        certified_at=gen_time,
    )
    view = world.service.view(org, world.service.item(org, item.id))
    assert view["storage"]["status"] == "ACTIVE"
    assert view["storage"]["expires_at"] == view["certified_at"].replace(
        str(gen_time.year), str(gen_time.year + 3), 1
    )
    world.at(add_months(gen_time, 36))
    report = world.runner.run()
    assert report.expired == 1 and report.errors == []
    assert world.store.item_terms(org, item.id)["status"] == "EXPIRED"


def test_uploads_claim_units_before_storing_and_leave_nothing(world: World) -> None:
    """Issue 13, item 6: concurrent uploads of one organisation claim units against its
    balance before a byte is stored; a refused or abandoned session keeps nothing."""
    org = world.org(units=1)
    other = world.org(units=1)
    content = b"an original that arrives over HTTP"

    async def run() -> None:
        async with world.service.uploads(org) as first:
            await first.claim(1)
            async with world.service.uploads(org) as second:
                with pytest.raises(InsufficientCredits) as refused:
                    await second.claim(1)  # the one credit is claimed by the first
                assert refused.value.needed == 1 and refused.value.available == 0
            async with world.service.uploads(other) as theirs:
                await theirs.claim(1)  # another organisation's balance is its own
            await first.stage(agen([content]))
            assert list(world.blobs.tmp.iterdir()) and not world.blobs.exists(
                first.staged[0].ref.key
            )
        async with world.service.uploads(org) as again:  # released when the first ended
            await again.claim(1)
            ref = await again.stage(agen([content]))
            spec = DepositSpec(Mode.STORED, Digests(ref.sha256), FORM, ref.size, (), ref)
            result = await world.service.deposit(org, [spec], uploads=again)
            assert len(result.items) == 1 and again.claimed == 0

    asyncio.run(run())
    key = hashlib.sha256(content).hexdigest()
    assert world.blobs.exists(key) and list(world.blobs.tmp.iterdir()) == []
    assert world.service.balance(org) == 0 and world.service._claimed == {}


async def agen(chunks):
    for chunk in chunks:
        yield chunk


def test_the_scheduler_runs_in_its_thread_and_stops_between_steps(world: World) -> None:
    """Issue 13, item 7: a run works in the scheduler's thread while the loop goes on,
    and stopping the server ends it after the step in progress (each step is atomic; a
    later run finishes the rest, paying nothing twice)."""
    import threading
    import time

    org = world.org(units=12)
    for n in range(12):
        world.stored(org, b"due original %d" % n)
    threads: set[str] = set()

    def slow_step(org_id, step) -> None:
        threads.add(threading.current_thread().name)
        time.sleep(0.1)

    runner = RenewalRunner(world.service, on_step=slow_step)
    later = add_months(T0, 200)  # storage over, grace over: expire, then purge each

    async def main() -> float:
        scheduler = RenewalScheduler(runner, 60, now=lambda: later)
        scheduler.start()
        while not threads:  # the loop keeps turning while the run works
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await scheduler.stop()
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.0
    assert threads == {"tsa-renewals_0"}
    states = [world.store.item(org, i.id).storage_state for i in world.service.items(org)]
    assert sum(s.value == "purged" for s in states) < 12  # stopped part-way
    report = RenewalRunner(world.service).run(later)  # the next run finishes the rest
    assert report.errors == []
    assert {world.store.item(org, i.id).storage_state.value for i in world.service.items(org)} == {
        "purged"
    }
