"""Making and renewing evidence records (RFC 4998 sections 4.2, 5.2), pure over bytes.

A `Stamp` gives the time-stamp token (TimeStampToken DER) of a hash value: in the
server it is the issuer's own path (issuance.Issuer.timestamp), so every token an
evidence record holds is in the token ledger like every other token.

- `initial_records`: one hash tree over a group of data objects' hash values, its root
  time-stamped once; each object gets a record with one chain of one ArchiveTimeStamp
  holding its reduced hash tree (none for a group of one).
- Timestamp renewal (section 5.2, first case): a new ArchiveTimeStamp over the hash of
  the DER `timeStamp` of the last ArchiveTimeStamp, same hash algorithm, appended to the
  last chain. Every record whose last timeStamp is the same (all records of one tree)
  is renewed by one token: `timestamp_renewal_imprint` is the same for all of them.
- Hash-tree renewal (section 5.2, second case): with a stronger algorithm H, each
  object's new leaf is H(H(d) || H(atsc)), atsc the DER ArchiveTimeStampSequence so far
  (its SEQUENCE tag and length included, as BouncyCastle reads it); the new leaves of a
  group make a new tree whose root is time-stamped; the new ArchiveTimeStamp starts a
  new chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from asn1crypto import cms

from tsa_server.evidence.ers.asn1 import (
    ArchiveTimeStamp,
    ArchiveTimeStampChain,
    ArchiveTimeStampSequence,
    EvidenceRecord,
    MalformedRecord,
    digest,
    digest_algorithm,
    load_record,
)
from tsa_server.evidence.ers.tree import HashTree

__all__ = [
    "Stamp",
    "TokenFacts",
    "archive_algorithm",
    "hash_tree_renewal_leaf",
    "initial_records",
    "last_time_stamp",
    "record_facts",
    "renew_hash_tree",
    "renew_timestamp",
    "timestamp_renewal_imprint",
    "token_facts",
]

K = TypeVar("K")

#: (hash value, hash algorithm name) -> TimeStampToken DER over that hash value.
Stamp = Callable[[bytes, str], bytes]


@dataclass(frozen=True)
class TokenFacts:
    """What the renewal rules read off a time-stamp token."""

    gen_time: datetime
    serial: int
    algorithm: str
    imprint: bytes
    signer_not_after: datetime | None  # the TSA certificate's end, when the token has it


def token_facts(token: bytes | cms.ContentInfo) -> TokenFacts:
    """The genTime, serial, imprint and TSA certificate end of a TimeStampToken."""
    info = cms.ContentInfo.load(token) if isinstance(token, bytes) else token
    try:
        signed = info["content"]
        tst = signed["encap_content_info"]["content"].parsed
        imprint = tst["message_imprint"]
        gen = tst["gen_time"].native.astimezone(UTC)
        sid = signed["signer_infos"][0]["sid"]
        not_after = None
        for choice in signed["certificates"] or ():
            if choice.name != "certificate":
                continue
            cert = choice.chosen
            tbs = cert["tbs_certificate"]
            if sid.name == "issuer_and_serial_number":
                match = (
                    tbs["serial_number"].native == sid.chosen["serial_number"].native
                    and tbs["issuer"] == sid.chosen["issuer"]
                )
            else:
                match = cert.key_identifier == sid.chosen.native
            if match:
                not_after = cert.not_valid_after.astimezone(UTC)
        return TokenFacts(
            gen,
            int(tst["serial_number"].native),
            imprint["hash_algorithm"]["algorithm"].native,
            imprint["hashed_message"].native,
            not_after,
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise MalformedRecord(f"not a time-stamp token: {exc}") from None


def archive_algorithm(ats: ArchiveTimeStamp) -> str:
    """The hash algorithm of an ArchiveTimeStamp: its digestAlgorithm, else the token's."""
    if ats["digest_algorithm"].native is not None:
        return str(ats["digest_algorithm"]["algorithm"].native)
    return token_facts(ats["time_stamp"]).algorithm


def _ats(algorithm: str, token: bytes, reduced: Sequence[Sequence[bytes]]) -> ArchiveTimeStamp:
    fields: dict[str, object] = {
        "digest_algorithm": digest_algorithm(algorithm),
        "time_stamp": cms.ContentInfo.load(token),
    }
    if reduced:
        fields["reduced_hashtree"] = [list(values) for values in reduced]
    return ArchiveTimeStamp(fields)


def _check_token(token: bytes, algorithm: str, imprint: bytes) -> None:
    facts = token_facts(token)
    if facts.algorithm != algorithm or facts.imprint != imprint:
        raise MalformedRecord("the time-stamp token does not cover the hash value it was asked for")


def initial_records(
    algorithm: str, leaves: Mapping[K, bytes], stamp: Stamp
) -> tuple[bytes, bytes, dict[K, bytes]]:
    """(root, token, {key: EvidenceRecord DER}) for a group of hash values (section 4.2)."""
    tree = HashTree.build(algorithm, list(leaves.values()))
    token = stamp(tree.root, algorithm)
    _check_token(token, algorithm, tree.root)
    records = {}
    for key, leaf in leaves.items():
        record = EvidenceRecord(
            {
                "version": 1,
                "digest_algorithms": [digest_algorithm(algorithm)],
                "archive_time_stamp_sequence": [[_ats(algorithm, token, tree.reduced(leaf))]],
            }
        )
        records[key] = record.dump()
    return tree.root, token, records


def last_time_stamp(record: EvidenceRecord) -> ArchiveTimeStamp:
    last: ArchiveTimeStamp = record["archive_time_stamp_sequence"][-1][-1]
    return last


def timestamp_renewal_imprint(record: bytes) -> tuple[str, bytes]:
    """(algorithm, H(DER timeStamp of the last ArchiveTimeStamp)): what a timestamp
    renewal time-stamps, the same for every record of one tree."""
    parsed = load_record(record)
    last = last_time_stamp(parsed)
    algorithm = archive_algorithm(parsed["archive_time_stamp_sequence"][-1][0])
    return algorithm, digest(algorithm, last["time_stamp"].dump())


def renew_timestamp(record: bytes, token: bytes) -> bytes:
    """The record with a new ArchiveTimeStamp (token over timestamp_renewal_imprint)
    appended to its last chain (section 5.2, timestamp renewal)."""
    algorithm, imprint = timestamp_renewal_imprint(record)
    _check_token(token, algorithm, imprint)
    parsed = load_record(record)
    chains = list(parsed["archive_time_stamp_sequence"])
    chains[-1] = ArchiveTimeStampChain([*chains[-1], _ats(algorithm, token, [])])
    return _with_chains(parsed, chains, algorithm)


def hash_tree_renewal_leaf(record: bytes, algorithm: str, data_hash: bytes) -> bytes:
    """H(h || ha): h = H(d) with the new algorithm (given), ha = H(DER of the
    ArchiveTimeStampSequence so far) (section 5.2, hash-tree renewal, steps 5 to 7)."""
    parsed = load_record(record)
    chains = parsed["archive_time_stamp_sequence"].dump()
    return digest(algorithm, data_hash, digest(algorithm, chains))


def renew_hash_tree(
    records: Mapping[K, tuple[bytes, bytes]], algorithm: str, stamp: Stamp
) -> tuple[bytes, bytes, dict[K, bytes]]:
    """(root, token, {key: renewed record}) for {key: (record, H(d) with `algorithm`)}:
    one new tree over the group's new leaves, each record given a new chain."""
    leaves = {
        key: hash_tree_renewal_leaf(record, algorithm, data_hash)
        for key, (record, data_hash) in records.items()
    }
    tree = HashTree.build(algorithm, list(leaves.values()))
    token = stamp(tree.root, algorithm)
    _check_token(token, algorithm, tree.root)
    renewed = {}
    for key, (record, _) in records.items():
        parsed = load_record(record)
        chain = ArchiveTimeStampChain([_ats(algorithm, token, tree.reduced(leaves[key]))])
        renewed[key] = _with_chains(
            parsed, [*parsed["archive_time_stamp_sequence"], chain], algorithm
        )
    return tree.root, token, renewed


def _with_chains(
    parsed: EvidenceRecord, chains: Sequence[ArchiveTimeStampChain], algorithm: str
) -> bytes:
    algorithms = list(parsed["digest_algorithms"])
    if all(a["algorithm"].native != algorithm for a in algorithms):
        algorithms.append(digest_algorithm(algorithm))
    fields: dict[str, object] = {
        "version": 1,
        "digest_algorithms": algorithms,
        "archive_time_stamp_sequence": ArchiveTimeStampSequence(list(chains)),
    }
    for name in ("crypto_infos", "encryption_info"):
        if parsed[name].native is not None:
            fields[name] = parsed[name]
    encoded: bytes = EvidenceRecord(fields).dump()
    return encoded


def record_facts(record: bytes) -> tuple[str, bytes, TokenFacts]:
    """(current algorithm, H(last timeStamp) as the group key, the last token's facts)."""
    parsed = load_record(record)
    last = last_time_stamp(parsed)
    algorithm = archive_algorithm(parsed["archive_time_stamp_sequence"][-1][0])
    return algorithm, digest("sha256", last["time_stamp"].dump()), token_facts(last["time_stamp"])
