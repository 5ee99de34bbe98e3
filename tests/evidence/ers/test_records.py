"""Evidence records made by the project (a hash tree over three items, its root
time-stamped by the real TSA in-process), renewed once by timestamp renewal and once by
hash-tree renewal (RFC 4998 section 5.2), checked by the project's verifier and by
BouncyCastle's ERS classes (ErsCheck.java): both accept them, both refuse a tampered
record and a changed data file."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from asn1crypto import x509

from tests.evidence.ers.conftest import BouncyCastle, Tsa
from tsa_server.evidence.ers.asn1 import load_record
from tsa_server.evidence.ers.build import (
    initial_records,
    record_facts,
    renew_hash_tree,
    renew_timestamp,
    timestamp_renewal_imprint,
)
from tsa_server.evidence.ers.verify import verify_record

DATA = {"a": b"first work", "b": b"second work", "c": b"third work"}


def roots(tsa: Tsa) -> list[x509.Certificate]:
    from tsa_server.rfc3161.verify import load_certificates

    return load_certificates(tsa.ca_file.read_bytes())


def digests(data: bytes) -> dict[str, bytes]:
    return {n: hashlib.new(n, data).digest() for n in ("sha256", "sha512")}


def made(tsa: Tsa) -> dict[str, bytes]:
    leaves = {key: hashlib.sha256(data).digest() for key, data in DATA.items()}
    _, _, records = initial_records("sha256", leaves, tsa.stamp)
    return records


def check_all(tsa: Tsa, records: dict[str, bytes], bc: BouncyCastle, tmp: Path) -> None:
    at = tsa.clock.now() + timedelta(minutes=1)
    for key, record in records.items():
        report = verify_record(record, digests(DATA[key]), trust_roots=roots(tsa), at=at)
        assert report.valid, report.reason
        status, said = bc.check(record, DATA[key], tmp, at)
        assert status == 0 and said.startswith("OK"), said


def test_a_group_gets_one_token_and_each_item_its_reduced_tree(tsa: Tsa) -> None:
    records = made(tsa)
    tokens = {
        load_record(r)["archive_time_stamp_sequence"][0][0]["time_stamp"].dump()
        for r in records.values()
    }
    assert len(tokens) == 1  # one ArchiveTimeStamp's token for the whole tree
    facts = {record_facts(r) for r in records.values()}
    assert len(facts) == 1  # same algorithm, same last timeStamp: one renewal group
    [(algorithm, _, token)] = facts
    assert algorithm == "sha256"
    assert tsa.ledger.entry_by_serial(token.serial) is not None  # in the token ledger


def test_timestamp_renewal_then_hash_tree_renewal_both_verifiers_agree(
    tsa: Tsa, bouncycastle: BouncyCastle, tmp_path: Path
) -> None:
    records = made(tsa)
    check_all(tsa, records, bouncycastle, tmp_path)

    tsa.clock.advance(timedelta(days=30))
    [(algorithm, imprint)] = {timestamp_renewal_imprint(r) for r in records.values()}
    token = tsa.stamp(imprint, algorithm)  # one token renews the whole tree
    records = {k: renew_timestamp(r, token) for k, r in records.items()}
    assert all(len(load_record(r)["archive_time_stamp_sequence"][0]) == 2 for r in records.values())
    check_all(tsa, records, bouncycastle, tmp_path)

    tsa.clock.advance(timedelta(days=30))
    group = {k: (r, hashlib.sha512(DATA[k]).digest()) for k, r in records.items()}
    _, _, records = renew_hash_tree(group, "sha512", tsa.stamp)
    parsed = load_record(records["a"])
    assert len(parsed["archive_time_stamp_sequence"]) == 2
    assert [a["algorithm"].native for a in parsed["digest_algorithms"]] == ["sha256", "sha512"]
    check_all(tsa, records, bouncycastle, tmp_path)

    # a changed data file: both refuse
    now = tsa.clock.now() + timedelta(minutes=1)
    report = verify_record(records["a"], digests(b"first work!"), trust_roots=roots(tsa), at=now)
    assert not report.valid and "does not cover the data" in report.reason
    status, said = bouncycastle.check(records["a"], b"first work!", tmp_path, now)
    assert status == 2 and said.startswith("FAIL"), said

    # a tampered record (one byte of the first reduced hash tree): both refuse
    tampered = bytearray(records["a"])
    leaf = hashlib.sha256(DATA["a"]).digest()
    other = next(
        v for v in (hashlib.sha256(DATA[k]).digest() for k in "bc") if bytes(tampered).find(v) >= 0
    )
    at = bytes(tampered).find(other)
    tampered[at + 5] ^= 0x01
    report = verify_record(bytes(tampered), digests(DATA["a"]), trust_roots=roots(tsa), at=now)
    assert not report.valid, report
    status, said = bouncycastle.check(bytes(tampered), DATA["a"], tmp_path, now)
    assert status == 2 and said.startswith("FAIL"), said
    assert leaf in records["a"]


def test_a_record_not_renewed_in_time_is_refused(tsa: Tsa) -> None:
    """Each archive timestamp must be valid when the next is made, the last one at the
    verification time: past the TSA certificate's end, an unrenewed record fails."""
    records = made(tsa)
    end = roots(tsa)[0].not_valid_after
    _, _, facts = record_facts(records["a"])
    assert facts.signer_not_after is not None and facts.signer_not_after <= end
    later = facts.signer_not_after + timedelta(days=1)
    report = verify_record(records["a"], digests(DATA["a"]), trust_roots=roots(tsa), at=later)
    assert not report.valid
    assert "certificate path is not valid at" in report.reason, report.reason
    assert "the verification time" in report.reason
