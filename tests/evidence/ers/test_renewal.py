"""The renewal scheduler's evidence-record steps (evidence/ers/renewal.py) in-process, on
both database engines: real SoftHSM key and Issuer, real evidence store, token ledger and
operations log. The TSA's certificates here come from a CA of the test's own so that a
key rollover (a new certificate for the key, ending later) can happen mid-test; the
records are verified against that CA.

Covers: records made for new items (one tree, one token, in the ledger), events in the
operations log, nothing done twice, timestamp renewal waiting for a certificate that ends
later and then renewing every record of the tree with one token, hash-tree renewal when
the configuration marks SHA-256 weak, and the bounded work per pass."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.store.sqlite import SqliteStore
from tsa_server.clock.base import ManualClock
from tsa_server.evidence.blobs import FileBlobStore
from tsa_server.evidence.ers.asn1 import load_record
from tsa_server.evidence.ers.renewal import ErsSettings
from tsa_server.evidence.ers.verify import verify_record
from tsa_server.evidence.renewal_runner import RenewalRunner
from tsa_server.evidence.service import DepositSpec, EvidenceService
from tsa_server.fees import DepositForm, Digests, Mode
from tsa_server.issuance.issuer import IssuanceSettings, Issuer
from tsa_server.issuance.opslog import OpsLog
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.wiring import load_chain

FORM = DepositForm(depositor="Acme", work_content="photos", statement="ours")
START = datetime.now(UTC).replace(microsecond=0)


class Pki:
    """A CA of the test's own that certifies the session token's TSA key."""

    def __init__(self, public_der: bytes) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ERS test CA")])
        self.name = name
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(START - timedelta(days=1))
            .not_valid_after(START + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.tsa_public = serialization.load_der_public_key(public_der)

    def tsa_chain(self, days: int) -> list[asn1_x509.Certificate]:
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"TSA {days}")]))
            .issuer_name(self.name)
            .public_key(self.tsa_public)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(START - timedelta(hours=1))
            .not_valid_after(START + timedelta(days=days))
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        return [
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
            for c in (cert, self.cert)
        ]


class World:
    def __init__(self, tmp_path: Path, hsm_config, signer, engine_db, settings) -> None:
        self.clock = ManualClock(START)
        self.signer = signer
        public = load_chain(hsm_config)[0].public_key.dump()
        self.pki = Pki(public)
        self.ledger = SqliteStore(tmp_path / "ledger.sqlite")
        self.ops_store = SqliteStore(tmp_path / "ops.sqlite")
        self.issuer = self.issuer_for(200)  # a certificate ending in 200 days
        self.store = engine_db.open(now=self.clock.now)
        self.blobs = FileBlobStore(tmp_path / "blobs")
        self.service = EvidenceService(
            self.store, self.blobs, self.timestamp, ops=OpsLog(self.ops_store), now=self.clock.now
        )
        self.runner = RenewalRunner(self.service, records=settings)
        self.org = self._org()

    def issuer_for(self, days: int) -> Issuer:
        return Issuer(
            template=TokenTemplate(self.signer.key_spec, self.pki.tsa_chain(days)),
            signer=self.signer,
            clock=self.clock,
            store=self.ledger,
            profile=Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,)),
            settings=IssuanceSettings(),
        )

    async def timestamp(self, digest: bytes, name: str = "sha256"):
        return await self.issuer.timestamp(digest, name)

    def _org(self) -> str:
        from tsa_server.accounts.service import Accounts

        org = Accounts(self.store, now=self.clock.now).create_organisation("org").id
        self.service.grant_lot(org, 20, "first")
        return org

    def deposit(self, *datas: bytes) -> list[str]:
        specs = []
        for data in datas:
            ref = self.blobs.put(data)
            digests = Digests(ref.sha256, ref.sha512, ref.sm3)
            specs.append(DepositSpec(Mode.STORED, digests, FORM, ref.size, (), ref))
        result = asyncio.run(self.service.deposit(self.org, specs))
        return [item.id for item in result.items]

    def events(self, kind: str) -> list[dict]:
        out = []
        for entry in self.ops_store.entries():
            event = json.loads(entry.token)
            if event.get("kind") == kind:
                out.append(event)
        return out

    def verify(self, item_id: str, data: bytes) -> None:
        record = self.store.evidence_record(self.org, item_id)
        assert record is not None
        digests = {n: hashlib.new(n, data).digest() for n in ("sha256", "sha512")}
        at = self.clock.now() + timedelta(seconds=1)
        report = verify_record(record, digests, trust_roots=[self.pki.cert], at=at)
        assert report.valid, report.reason

    def close(self) -> None:
        self.store.close()
        self.ledger.close()
        self.ops_store.close()


@pytest.fixture
def make_world(tmp_path: Path, hsm_config, signer, engine_db):
    worlds: list[World] = []

    def make(settings: ErsSettings | None = None) -> World:
        world = World(tmp_path, hsm_config, signer, engine_db, settings or ErsSettings())
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


DATA = (b"photo one", b"photo two", b"photo three")


def test_records_are_made_then_renewed_by_timestamp_after_a_rollover(make_world) -> None:
    world = make_world()
    ids = world.deposit(*DATA)
    report = world.runner.run(world.clock.now())
    assert report.records_created == 3 and report.records_renewed == 0, report.as_dict()
    [event] = world.events("evidence_record_created")
    assert event["items"] == 3 and event["algorithm"] == "sha256" and len(event["root"]) == 64
    assert world.ledger.entry_by_serial(int(event["serial"], 16)) is not None
    for item_id, data in zip(ids, DATA, strict=True):
        world.verify(item_id, data)
    again = world.runner.run(world.clock.now())
    assert again.records_created == again.records_renewed == 0  # nothing twice

    # 111 days later the certificate ends within 90 days; the TSA still signs with it:
    # a renewal would gain nothing, so it waits (the one probe token renews nothing)
    world.clock.advance(timedelta(days=111))
    waiting = world.runner.run(world.clock.now())
    assert waiting.records_renewed == 0
    assert world.events("evidence_record_renewed") == []
    # the key rollover: a certificate ending later; the next pass renews (after a day:
    # the last probe is remembered for one)
    world.issuer = world.issuer_for(800)
    world.clock.advance(timedelta(days=1, minutes=1))
    renewed = world.runner.run(world.clock.now())
    assert renewed.records_renewed == 3, renewed.as_dict()
    [event] = world.events("evidence_record_renewed")
    assert event["renewal"] == "timestamp" and event["items"] == 3  # one token, the tree
    for item_id, data in zip(ids, DATA, strict=True):
        world.verify(item_id, data)
        chains = load_record(world.store.evidence_record(world.org, item_id))
        assert [len(c) for c in chains["archive_time_stamp_sequence"]] == [2]
    assert world.runner.run(world.clock.now()).records_renewed == 0  # not due any more
    # past the first certificate's end the renewed records still verify: each archive
    # timestamp was valid when the next one was made
    world.clock.advance(timedelta(days=100))
    for item_id, data in zip(ids, DATA, strict=True):
        world.verify(item_id, data)


def test_hash_tree_renewal_when_sha256_is_weak(make_world) -> None:
    world = make_world()
    ids = world.deposit(*DATA)
    world.runner.run(world.clock.now())
    world.runner.records.settings = ErsSettings(weak_hashes=frozenset({"sha256"}))
    world.clock.advance(timedelta(days=1))
    report = world.runner.run(world.clock.now())
    assert report.records_renewed == 3, report.as_dict()
    [event] = world.events("evidence_record_renewed")
    assert event["renewal"] == "hash_tree" and event["algorithm"] == "sha512"
    for item_id, data in zip(ids, DATA, strict=True):
        world.verify(item_id, data)
        record = load_record(world.store.evidence_record(world.org, item_id))
        assert len(record["archive_time_stamp_sequence"]) == 2
    assert world.runner.run(world.clock.now()).records_renewed == 0  # sha512 now
    [new] = world.deposit(b"photo four")  # new records go straight to SHA-512
    assert world.runner.run(world.clock.now()).records_created == 1
    record = load_record(world.store.evidence_record(world.org, new))
    assert record["digest_algorithms"][0]["algorithm"].native == "sha512"
    world.verify(new, b"photo four")


def test_work_per_pass_is_bounded(make_world) -> None:
    world = make_world(ErsSettings(max_group=2))
    world.deposit(*DATA)
    assert world.runner.run(world.clock.now()).records_created == 2
    assert world.runner.run(world.clock.now()).records_created == 1
    assert len(world.events("evidence_record_created")) == 2
