"""Verifying an evidence record against a data object (RFC 4998 sections 4.3 and 5.3).

For every ArchiveTimeStampChain, in order, with its hash algorithm H (every
ArchiveTimeStamp of a chain must use the same):

1. the first ArchiveTimeStamp covers H(d), the data object's hash, or, in every chain
   after the first (hash-tree renewal), H(H(d) || H(atsc)) with atsc the DER
   ArchiveTimeStampSequence of the chains before it;
2. every further ArchiveTimeStamp of the chain covers H(DER timeStamp of the one before
   it) (timestamp renewal);
3. "covers": the hash value is in the first list of the reduced hash tree, and the walk
   up the tree (tree.root_from) ends at the token's messageImprint, whose algorithm is H;
4. every time-stamp token passes the project's token verifier (rfc3161/verify.py:
   signature, ESS signing certificate, TSA key purpose, a certificate path to the given
   trust roots valid at its own genTime, the imprint) and its certificate path is still
   valid at the genTime of the next ArchiveTimeStamp (the renewal came in time); the
   last one's path must be valid at the verification time (`at`, default now);
5. genTimes never go backwards.

The report names each ArchiveTimeStamp, what it covers, its genTime and serial, and the
first reason the record fails. Nothing raises for a bad record: MalformedRecord only when
the bytes are not an evidence record at all (the CLI's usage error).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from asn1crypto import cms, x509

from ledger.serials import serial_text
from tsa_server.evidence.ers.asn1 import (
    HASHES,
    EvidenceRecord,
    MalformedRecord,
    der_sequence,
    digest,
    load_record,
)
from tsa_server.evidence.ers.build import archive_algorithm
from tsa_server.evidence.ers.tree import NotInTree, root_from
from tsa_server.rfc3161.verify import VerifyOptions, verify_token
from tsa_server.rfc3161.verify_chain import validate_path
from tsa_server.rfc3161.verify_load import CertificateLike, to_asn1_certificate

__all__ = [
    "MalformedRecord",
    "RecordReport",
    "StampCheck",
    "algorithms_of",
    "data_digests",
    "verify_record",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StampCheck:
    """One ArchiveTimeStamp: where it is, what it must cover, and the verdict."""

    chain: int
    index: int
    algorithm: str
    covers: str
    passed: bool
    reason: str
    gen_time: datetime | None = None
    serial: str | None = None
    signer: str | None = None


@dataclass(frozen=True)
class RecordReport:
    """The verdict on one evidence record and one data object."""

    valid: bool
    reason: str
    stamps: tuple[StampCheck, ...] = field(default_factory=tuple)
    algorithms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for stamp in out["stamps"]:
            if stamp["gen_time"] is not None:
                stamp["gen_time"] = stamp["gen_time"].isoformat().replace("+00:00", "Z")
        return out


def algorithms_of(record: bytes | EvidenceRecord) -> list[str]:
    """The hash algorithms of the record's chains, first to last, each once."""
    parsed = load_record(record) if isinstance(record, bytes) else record
    names: list[str] = []
    for chain in parsed["archive_time_stamp_sequence"]:
        name = archive_algorithm(chain[0])
        if name not in names:
            names.append(name)
    return names


def data_digests(stream: BinaryIO, algorithms: Iterable[str]) -> dict[str, bytes]:
    """The data object's hash with each algorithm, reading the stream once."""
    hashes = {name: hashlib.new(name) for name in algorithms if name in HASHES}
    while chunk := stream.read(_CHUNK):
        for h in hashes.values():
            h.update(chunk)
    return {name: h.digest() for name, h in hashes.items()}


@dataclass
class _Checked:
    check: StampCheck
    signer: x509.Certificate | None
    pool: list[x509.Certificate]


def verify_record(
    record: bytes,
    digests: Mapping[str, bytes],
    *,
    trust_roots: Sequence[CertificateLike],
    extra_certs: Sequence[CertificateLike] = (),
    at: datetime | None = None,
) -> RecordReport:
    """Verify `record` for the data object whose hashes are `digests` ({algorithm:
    H(d)}, every algorithm of algorithms_of(record)) (module docstring)."""
    parsed = load_record(record)
    at = at or datetime.now(UTC)
    algorithms = tuple(algorithms_of(parsed))
    anchors = [to_asn1_certificate(c) for c in trust_roots]
    extra = [to_asn1_certificate(c) for c in extra_certs]
    chains = list(parsed["archive_time_stamp_sequence"])
    stamps: list[_Checked] = []
    for k, chain in enumerate(chains):
        algorithm = archive_algorithm(chain[0])
        if algorithm not in HASHES:
            return _fail(f"chain {k + 1} uses {algorithm}, which is not supported", stamps)
        if algorithm not in digests:
            return _fail(f"chain {k + 1} needs the data's {algorithm} hash", stamps)
        leaf = digests[algorithm]
        covers = "the data"
        if k:
            earlier = der_sequence(c.dump() for c in chains[:k])
            leaf = digest(algorithm, leaf, digest(algorithm, earlier))
            covers = f"the data and the {k} chain(s) before it (hash-tree renewal)"
        for j, ats in enumerate(chain):
            if j:
                leaf = digest(algorithm, chain[j - 1]["time_stamp"].dump())
                covers = "the previous archive timestamp (timestamp renewal)"
            stamp = _check_stamp(k, j, algorithm, ats, leaf, covers, anchors, extra)
            stamps.append(stamp)
            if not stamp.check.passed:
                return _fail(stamp.check.reason, stamps, algorithms)
    problem = _in_time(stamps, anchors, extra, at)
    if problem:
        return _fail(problem, stamps, algorithms)
    n = len(stamps)
    return RecordReport(
        True,
        f"{n} archive timestamp(s) in {len(chains)} chain(s) cover the data, each renewed "
        "while the one before it was valid",
        tuple(s.check for s in stamps),
        algorithms,
    )


def _fail(reason: str, stamps: list[_Checked], algorithms: tuple[str, ...] = ()) -> RecordReport:
    return RecordReport(False, reason, tuple(s.check for s in stamps), algorithms)


def _check_stamp(
    k: int,
    j: int,
    algorithm: str,
    ats: Any,
    leaf: bytes,
    covers: str,
    anchors: list[x509.Certificate],
    extra: list[x509.Certificate],
) -> _Checked:
    where = f"chain {k + 1}, archive timestamp {j + 1}"

    def result(passed: bool, reason: str, **facts: Any) -> StampCheck:
        return StampCheck(k + 1, j + 1, algorithm, covers, passed, reason, **facts)

    if ats["digest_algorithm"].native is not None and archive_algorithm(ats) != algorithm:
        return _Checked(result(False, f"{where} changes the chain's hash algorithm"), None, [])
    reduced = [[v.native for v in values] for values in (ats["reduced_hashtree"] or ())]
    try:
        root = root_from(algorithm, leaf, reduced)
    except NotInTree:
        return _Checked(
            result(False, f"{where} does not cover {covers}: not in its tree"), None, []
        )
    token = ats["time_stamp"].dump()
    options = VerifyOptions(
        trust_roots=anchors, extra_certs=extra, digest=root, digest_algorithm=algorithm
    )
    report = verify_token(token, options)
    fields = report.fields
    facts: dict[str, Any] = {}
    if fields is not None:
        facts["gen_time"] = fields.gen_time
        facts["serial"] = serial_text(fields.serial_number)
        facts["signer"] = fields.signer.subject if fields.signer else None
    if not report.valid:
        failed = report.failures[0]
        if failed.name == "message_imprint":
            reason = f"{where} does not cover {covers}: the tree leads elsewhere than its imprint"
        else:
            reason = f"{where}: token check {failed.name} failed: {failed.reason}"
        return _Checked(result(False, reason, **facts), None, [])
    signer, pool = _signer_and_pool(ats["time_stamp"], extra)
    return _Checked(result(True, f"covers {covers}", **facts), signer, pool)


def _signer_and_pool(
    info: cms.ContentInfo, extra: list[x509.Certificate]
) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    signed = info["content"]
    sid = signed["signer_infos"][0]["sid"]
    pool = [c.chosen for c in signed["certificates"] or () if c.name == "certificate"]
    pool += extra
    for cert in pool:
        if sid.name == "issuer_and_serial_number":
            if cert.serial_number == sid.chosen["serial_number"].native and (
                cert.issuer == sid.chosen["issuer"]
            ):
                return cert, pool
        elif cert.key_identifier == sid.chosen.native:
            return cert, pool
    return None, pool


def _in_time(
    stamps: list[_Checked],
    anchors: list[x509.Certificate],
    extra: list[x509.Certificate],
    at: datetime,
) -> str | None:
    """Step 4's second half and step 5: each path valid when the next stamp was made."""
    for i, stamp in enumerate(stamps):
        check = stamp.check
        where = f"chain {check.chain}, archive timestamp {check.index}"
        nxt = stamps[i + 1].check.gen_time if i + 1 < len(stamps) else at
        if check.gen_time is None or nxt is None or stamp.signer is None:
            return f"{where}: its genTime or certificate could not be read"
        if nxt < check.gen_time:
            return f"{where} is later than the archive timestamp after it"
        path = validate_path(stamp.signer, stamp.pool, anchors, nxt)
        if not path.path:
            last = i + 1 == len(stamps)
            when = f"at {_text(nxt)}, " + ("the verification time" if last else "when renewed")
            return f"{where}: its certificate path is not valid {when}: {path.reason}"
    return None


def _text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
