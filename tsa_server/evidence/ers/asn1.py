"""RFC 4998 (Evidence Record Syntax) section 3 and 4 structures as asn1crypto classes.

The ERS module is written with IMPLICIT TAGS::

    EvidenceRecord ::= SEQUENCE {
        version                   INTEGER { v1(1) },
        digestAlgorithms          SEQUENCE OF AlgorithmIdentifier,
        cryptoInfos               [0] CryptoInfos OPTIONAL,
        encryptionInfo            [1] EncryptionInfo OPTIONAL,
        archiveTimeStampSequence  ArchiveTimeStampSequence }
    ArchiveTimeStampSequence ::= SEQUENCE OF ArchiveTimeStampChain
    ArchiveTimeStampChain    ::= SEQUENCE OF ArchiveTimeStamp
    ArchiveTimeStamp ::= SEQUENCE {
        digestAlgorithm  [0] AlgorithmIdentifier OPTIONAL,
        attributes       [1] Attributes OPTIONAL,
        reducedHashtree  [2] SEQUENCE OF PartialHashtree OPTIONAL,
        timeStamp        ContentInfo }
    PartialHashtree ::= SEQUENCE OF OCTET STRING

Plus the few helpers every other module of the package shares: the hash algorithms an
evidence record may use (by asn1crypto name, as hashlib knows them), DER SEQUENCE
framing of already-encoded members (RFC 4998 hashes encodings, so members are never
re-encoded), and decoding with one clear error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from asn1crypto import algos, cms, core

__all__ = [
    "HASHES",
    "ArchiveTimeStamp",
    "ArchiveTimeStampChain",
    "ArchiveTimeStampSequence",
    "CryptoInfos",
    "EncryptionInfo",
    "EvidenceRecord",
    "MalformedRecord",
    "PartialHashtree",
    "ReducedHashtree",
    "der_sequence",
    "digest",
    "digest_algorithm",
    "load_record",
]

#: Hash algorithms of evidence records this project reads and writes (asn1crypto names,
#: which hashlib shares). SHA-1 is read only, for old third-party records.
HASHES: dict[str, int] = {
    "sha1": 20,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "sha3_256": 32,
    "sha3_384": 48,
    "sha3_512": 64,
}


class MalformedRecord(ValueError):
    """The bytes are not an RFC 4998 EvidenceRecord this project can read."""


class PartialHashtree(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = core.OctetString


class ReducedHashtree(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = PartialHashtree


class ArchiveTimeStamp(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("digest_algorithm", algos.DigestAlgorithm, {"implicit": 0, "optional": True}),
        ("attributes", cms.CMSAttributes, {"implicit": 1, "optional": True}),
        ("reduced_hashtree", ReducedHashtree, {"implicit": 2, "optional": True}),
        ("time_stamp", cms.ContentInfo),
    ]


class ArchiveTimeStampChain(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = ArchiveTimeStamp


class ArchiveTimeStampSequence(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = ArchiveTimeStampChain


class CryptoInfos(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = cms.CMSAttribute


class EncryptionInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("encryption_info_type", core.ObjectIdentifier),
        ("encryption_info_value", core.Any),
    ]


class DigestAlgorithms(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = algos.DigestAlgorithm


class EvidenceRecord(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("version", core.Integer),
        ("digest_algorithms", DigestAlgorithms),
        ("crypto_infos", CryptoInfos, {"implicit": 0, "optional": True}),
        ("encryption_info", EncryptionInfo, {"implicit": 1, "optional": True}),
        ("archive_time_stamp_sequence", ArchiveTimeStampSequence),
    ]


def digest(name: str, *parts: bytes) -> bytes:
    """H(part1 || part2 || ...) with the hash algorithm `name` (HASHES)."""
    if name not in HASHES:
        raise MalformedRecord(f"hash algorithm {name} is not supported")
    h = hashlib.new(name)
    for part in parts:
        h.update(part)
    return h.digest()


def digest_algorithm(name: str) -> algos.DigestAlgorithm:
    """The AlgorithmIdentifier of `name`, parameters absent (RFC 5754 section 2)."""
    return algos.DigestAlgorithm({"algorithm": name})


def der_sequence(members: Iterable[bytes]) -> bytes:
    """A DER SEQUENCE around members already DER-encoded (their bytes kept as they are)."""
    body = b"".join(members)
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x30" + length + body


def load_record(data: bytes) -> EvidenceRecord:
    """Decode and fully parse an EvidenceRecord (DER); MalformedRecord says what is wrong."""
    try:
        record: EvidenceRecord = EvidenceRecord.load(data, strict=True)
        _parse_members(record)
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedRecord(f"not an RFC 4998 evidence record: {exc}") from None
    if record["version"].native != 1:
        raise MalformedRecord(f"evidence record version {record['version'].native}, not 1")
    chains = record["archive_time_stamp_sequence"]
    if len(chains) == 0 or any(len(chain) == 0 for chain in chains):
        raise MalformedRecord("the evidence record has an empty archive timestamp chain")
    return record


def _parse_members(record: EvidenceRecord) -> None:
    """Parse the record's own members now (not on first use); the time-stamp tokens are
    parsed only as far as their content type (the token verifier reads the rest)."""
    for algorithm in record["digest_algorithms"]:
        algorithm["algorithm"].native  # noqa: B018
    for chain in record["archive_time_stamp_sequence"]:
        for ats in chain:
            ats["digest_algorithm"].native  # noqa: B018
            for partial in ats["reduced_hashtree"] or ():
                for value in partial:
                    value.native  # noqa: B018
            ats["time_stamp"]["content_type"].native  # noqa: B018
