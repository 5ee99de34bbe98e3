"""Third-party evidence records (tests/vectors/ers_bsi/README.md: the BSI's test data,
as published in BouncyCastle's test resources) through the project's verifier."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import x509

from tsa_server.evidence.ers.asn1 import load_record
from tsa_server.evidence.ers.build import archive_algorithm, token_facts
from tsa_server.evidence.ers.tree import root_from
from tsa_server.evidence.ers.verify import algorithms_of, data_digests, verify_record

VECTORS = Path(__file__).parents[2] / "vectors" / "ers_bsi"
AT = datetime(2017, 3, 16, tzinfo=UTC)  # the data's date; its certificates expired since


def embedded_roots(record: bytes) -> list[x509.Certificate]:
    parsed = load_record(record)
    return [
        choice.chosen
        for chain in parsed["archive_time_stamp_sequence"]
        for ats in chain
        for choice in ats["time_stamp"]["content"]["certificates"] or ()
        if choice.name == "certificate" and choice.chosen.self_signed
    ]


@pytest.mark.parametrize(
    ("name", "stamps"), [("1Chain1ATS", 1), ("1Chain2ATS", 2), ("2Chains3ATS", 3)]
)
def test_the_ers_testtool_records_are_valid_for_their_data(name: str, stamps: int) -> None:
    record = (VECTORS / "ers-testtool" / f"{name}.ers").read_bytes()
    with (VECTORS / "BIN.bin").open("rb") as data:
        digests = data_digests(data, algorithms_of(record))
    report = verify_record(record, digests, trust_roots=embedded_roots(record), at=AT)
    assert report.valid, report.reason
    assert len(report.stamps) == stamps
    changed = data_digests(io.BytesIO(b"some binary content!"), digests)
    assert not verify_record(record, changed, trust_roots=embedded_roots(record), at=AT).valid


def first_list(record: bytes, chain: int = 0) -> list[bytes]:
    ats = load_record(record)["archive_time_stamp_sequence"][chain][0]
    return [v.native for v in ats["reduced_hashtree"][0]]


@pytest.mark.parametrize("kind", ["INIT", "CHAIN"])
def test_tr_esor_ok_records_verify_and_nok_records_do_not(kind: str) -> None:
    for verdict in ("OK", "NOK"):
        record = (VECTORS / "tr-esor-c2" / f"ER_{verdict}_{kind}.ers").read_bytes()
        for value in first_list(record):
            report = verify_record(
                record, {"sha256": value}, trust_roots=embedded_roots(record), at=AT
            )
            assert report.valid is (verdict == "OK"), (verdict, kind, report.reason)


def test_tr_esor_hash_tree_renewed_records() -> None:
    for verdict in ("OK", "NOK"):
        record = (VECTORS / "tr-esor-c2" / f"ER_{verdict}_SEQ.ers").read_bytes()
        [value, *_] = first_list(record)
        report = verify_record(record, {"sha256": value}, trust_roots=embedded_roots(record), at=AT)
        assert not report.valid and report.reason == "chain 2 needs the data's sha384 hash"
        assert [s.passed for s in report.stamps] == [True, True]  # chain 1 holds
        ats = load_record(record)["archive_time_stamp_sequence"][1][0]
        algorithm = archive_algorithm(ats)
        reduced = [[v.native for v in values] for values in ats["reduced_hashtree"]]
        imprint = token_facts(ats["time_stamp"]).imprint
        reaches = {root_from(algorithm, leaf, reduced) == imprint for leaf in reduced[0]}
        assert reaches == {verdict == "OK"}
