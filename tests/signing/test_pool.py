"""The signing pool: worker processes with their own PKCS#11 sessions on the session
token. Faults are real: a worker is SIGKILLed mid-batch."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from tests.support.queries import failure_of, make_request
from tsa_server.errors import SignerUnavailable
from tsa_server.issuance.issuer import IssuanceSettings, Issuer
from tsa_server.signing.pool import SigningPool
from tsa_server.wiring import load_chain, token_location


@pytest.fixture
def pool(hsm_config, signer):
    made = SigningPool(
        token_location(hsm_config),
        hsm_config.pkcs11.key_label,
        rsa_pss=False,
        workers=2,
        spki=signer.public_key_info(),
    )
    yield made
    made.close()


def verify(signer, message: bytes, signature: bytes) -> None:
    key = load_der_public_key(signer.public_key_info())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_batches_signed_concurrently_by_the_workers_verify(pool, signer) -> None:
    async def run():
        batches = [[b"batch %d message %d" % (b, m) for m in range(20)] for b in range(6)]
        results = await asyncio.gather(
            *(pool.sign_batch(batch, ["sha256"] * len(batch)) for batch in batches)
        )
        return batches, results

    batches, results = asyncio.run(run())
    for batch, signatures in zip(batches, results, strict=True):
        assert len(signatures) == len(batch)
        for message, signature in zip(batch, signatures, strict=True):
            verify(signer, message, signature)


def test_a_killed_worker_fails_its_batch_and_is_replaced(pool, signer) -> None:
    async def run():
        await pool.sign_batch([b"warm"], ["sha256"])
        victims = [w.process.pid for w in pool._workers if w is not None]
        big = [b"m%d" % i for i in range(3000)]
        signing = [
            asyncio.ensure_future(pool.sign_batch(big, ["sha256"] * len(big))) for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        outcomes = await asyncio.gather(*signing, return_exceptions=True)
        after = await pool.sign_batch([b"after"], ["sha256"])
        return outcomes, after

    outcomes, after = asyncio.run(run())
    assert all(isinstance(o, SignerUnavailable) for o in outcomes), outcomes
    verify(signer, b"after", after[0])


def test_a_worker_with_another_key_is_refused(hsm_config) -> None:
    with pytest.raises(SignerUnavailable, match="different key"):
        SigningPool(
            token_location(hsm_config),
            hsm_config.pkcs11.key_label,
            rsa_pss=False,
            workers=1,
            spki=b"not this key",
        )


def test_a_failed_batch_voids_the_batches_sequenced_after_it(
    tmp_path, hsm_config, signer, pool
) -> None:
    """Kill the workers while several batches are being signed: every one of them is
    answered systemFailure, nothing is in the ledger out of order, and issuance then
    goes on from the last durable index."""
    from ledger.store.sqlite import SqliteStore
    from tsa_server.clock.base import ManualClock
    from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
    from tsa_server.rfc3161.request import Profile
    from tsa_server.rfc3161.token import TokenTemplate

    store = SqliteStore(tmp_path / "ledger.sqlite")
    issuer = Issuer(
        template=TokenTemplate(signer.key_spec, load_chain(hsm_config)),
        signer=signer,
        clock=ManualClock(),
        store=store,
        profile=Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,)),
        settings=IssuanceSettings(max_batch=400, max_in_flight=4),
        batch_signer=pool,
    )

    async def run():
        first = await asyncio.gather(*(issuer.issue(make_request(b"a%d" % i)) for i in range(5)))
        victims = [w.process.pid for w in pool._workers if w is not None]
        doomed = [
            asyncio.ensure_future(issuer.issue(make_request(b"b%d" % i))) for i in range(1600)
        ]
        await asyncio.sleep(0.05)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        middle = await asyncio.gather(*doomed)
        last = await asyncio.gather(*(issuer.issue(make_request(b"c%d" % i)) for i in range(5)))
        return first, middle, last

    first, middle, last = asyncio.run(run())
    assert {failure_of(r)[0] for r in first} == {"granted"}
    assert {failure_of(r)[0] for r in last} == {"granted"}
    outcomes = [failure_of(r)[0] for r in middle]
    assert "rejection" in outcomes  # the kill landed on batches in flight
    granted_middle = outcomes.count("granted")
    assert store.size() == 5 + granted_middle + 5
    entries = list(store.entries())
    assert [e.index for e in entries] == list(range(store.size()))
    assert len({e.serial for e in entries}) == len(entries)
    gen_times = [e.gen_time_ms for e in entries]
    assert gen_times == sorted(gen_times)
    imprints = {e.imprint for e in entries}
    for i in range(5):
        assert hashlib.sha256(b"c%d" % i).digest() in imprints
    issuer.close()
    store.close()


def test_replies_larger_than_the_socket_buffer_under_uvloop(pool, signer) -> None:
    """uvloop (the server's loop) makes watched descriptors non-blocking; a reply of
    several hundred kilobytes must still arrive whole (a bug seen with RSA batches)."""
    import uvloop

    messages = [b"big %d" % i for i in range(6000)]  # ~430 kB of signatures back

    async def run():
        return await asyncio.gather(
            pool.sign_batch(messages, ["sha256"] * len(messages)),
            pool.sign_batch(messages[:10], ["sha256"] * 10),
        )

    loop = uvloop.new_event_loop()
    try:
        big, small = loop.run_until_complete(run())
    finally:
        loop.close()
    assert len(big) == len(messages) and len(small) == 10
    verify(signer, messages[-1], big[-1])
