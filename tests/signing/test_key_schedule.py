"""The key ring in the issuer (issuance/keyring.py) and the schedule file
(signing/schedule.py), in-process on the session's SoftHSM key with a ManualClock: the
usage period stops issuance, /readyz warns ahead of it, a staged successor takes over
at its instant and clears the warning; nothing sleeps."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest

from ledger.store.sqlite import SqliteStore
from tests.support.queries import failure_of, make_request, parse_response
from tsa_server.clock.base import ManualClock
from tsa_server.issuance.issuer import IssuanceSettings, Issuer
from tsa_server.issuance.keyring import SigningKey, Switch
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.signing import schedule
from tsa_server.signing.pool import InlineSigner
from tsa_server.signing.schedule import Retirement, ScheduledKey, ScheduleError
from tsa_server.wiring import load_chain

PROFILE = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,))
T0 = datetime(2027, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    made = SqliteStore(tmp_path / "ledger.sqlite")
    yield made
    made.close()


def key(hsm_config, signer, label: str, retires: datetime | None) -> SigningKey:
    chain = load_chain(hsm_config)
    retirement = Retirement(retires, retires, retires + timedelta(days=1)) if retires else None
    return SigningKey(
        label,
        signer,
        InlineSigner(signer),
        TokenTemplate(signer.key_spec, chain),
        tuple(chain),
        retirement,
    )


def issue(issuer: Issuer, count: int = 1) -> list[bytes]:
    async def run() -> list[bytes]:
        return list(await asyncio.gather(*(issuer.issue(make_request()) for _ in range(count))))

    return asyncio.run(run())


def test_usage_period_end_stops_issuance_with_warnings_ahead(hsm_config, signer, store) -> None:
    clock = ManualClock(T0)
    end = T0 + timedelta(days=10)
    issuer = Issuer(
        template=None,  # type: ignore[arg-type]  # the key carries its template
        signer=signer,
        clock=clock,
        store=store,
        profile=PROFILE,
        settings=IssuanceSettings(key_expiry_warning=timedelta(days=30)),
        key=key(hsm_config, signer, "old", end),
    )
    (warning,) = issuer.warnings()
    assert "'old' retires at 2027-03-11T12:00:00.000Z (usage period end)" in warning
    assert "in 10 day(s)" in warning
    assert failure_of(issue(issuer)[0])[0] == "granted"
    assert asyncio.run(issuer.problems()) == []
    clock.set(end - timedelta(microseconds=1))
    assert failure_of(issue(issuer)[0])[0] == "granted"
    clock.set(end)
    assert failure_of(issue(issuer)[0]) == ("rejection", frozenset({"system_failure"}))
    assert store.size() == 2
    problems = asyncio.run(issuer.problems())
    assert any("usage period ended at 2027-03-11T12:00:00.000Z" in p for p in problems)
    assert issuer.warnings() == []  # past the end: a problem, no longer a warning
    issuer.close()


def test_a_staged_successor_switches_at_its_instant(hsm_config, signer, store) -> None:
    clock = ManualClock(T0)
    old = key(hsm_config, signer, "old", T0 + timedelta(days=5))
    new = key(hsm_config, signer, "new", None)
    issuer = Issuer(
        template=None,  # type: ignore[arg-type]
        signer=signer,
        clock=clock,
        store=store,
        profile=PROFILE,
        key=old,
    )
    switches: list[Switch] = []
    drained: list[str] = []
    issuer.keys.on_switch = switches.append
    issuer.keys.on_drained = lambda k: drained.append(k.label)
    assert issuer.warnings()
    at = T0 + timedelta(seconds=3)
    issuer.keys.stage(new, at, clock.now())
    assert issuer.warnings() == []  # the successor comes before the end
    issue(issuer, 3)
    assert issuer.keys.current is old and not switches
    clock.set(at - timedelta(milliseconds=1))
    issue(issuer)
    clock.set(at)
    replies = issue(issuer, 4)
    assert issuer.keys.current is new and drained == ["old"]
    (switch,) = switches
    assert switch.old is old and switch.activated_at == at == switch.scheduled_at
    for reply in replies:
        tst = parse_response(reply)["time_stamp_token"]["content"]["encap_content_info"]
        assert tst["content"].parsed["gen_time"].native >= at
    assert issuer.keys.current.retires_at is None and issuer.warnings() == []
    issuer.close()


def test_a_late_staged_key_activates_when_staged(hsm_config, signer) -> None:
    ring_issuer_key = key(hsm_config, signer, "a", None)
    from tsa_server.issuance.keyring import KeyRing

    ring = KeyRing(ring_issuer_key)
    late = T0 + timedelta(microseconds=2500)
    ring.stage(key(hsm_config, signer, "b", None), T0 - timedelta(seconds=1), late)
    assert ring.successor is not None
    assert ring.successor[1] == T0 + timedelta(microseconds=3000)  # rounded up to the ms
    assert ring.switch_due(T0 + timedelta(microseconds=2999)) is None
    switch = ring.switch_due(T0 + timedelta(microseconds=3000))
    assert switch is not None and switch.scheduled_at == T0 - timedelta(seconds=1)


def test_schedule_file_rules(tmp_path) -> None:
    assert schedule.add_months(datetime(2027, 1, 31, tzinfo=UTC), 1).day == 28
    assert schedule.add_months(datetime(2026, 11, 15, tzinfo=UTC), 15) == datetime(
        2028, 2, 15, tzinfo=UTC
    )
    path = tmp_path / "certs" / "key-schedule.json"
    assert schedule.load(path).keys == ()
    entry = ScheduledKey("k1", "k1-chain.pem", "ab" * 32, T0, T0 + timedelta(days=400))
    plan = schedule.KeySchedule().with_key(entry).activated("k1", T0 + timedelta(hours=1))
    schedule.save(path, plan)
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = schedule.load(path)
    assert loaded.active_at(T0) is None and loaded.next_after(T0) == loaded.get("k1")
    assert loaded.active_at(T0 + timedelta(hours=1)) == loaded.get("k1")
    os.chmod(path, 0o620)
    with pytest.raises(ScheduleError, match="writable by other users"):
        schedule.load(path)
    os.chmod(path, 0o600)
    path.write_text('{"version": 1, "keys": [{"label": "../x"}]}')
    with pytest.raises(ScheduleError, match="key label"):
        schedule.load(path)
