"""Object identifiers and the imprint hash table of the token profile."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.binding import LEDGER_BINDING_OID

ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"


@dataclass(frozen=True)
class ImprintHash:
    """A hash algorithm a client may use for its message imprint."""

    name: str  # hashlib / asn1crypto name
    oid: str
    size: int  # digest length in bytes; the imprint must have exactly this length


IMPRINT_HASHES: dict[str, ImprintHash] = {
    h.oid: h
    for h in (
        ImprintHash("sha1", "1.3.14.3.2.26", 20),
        ImprintHash("sha256", "2.16.840.1.101.3.4.2.1", 32),
        ImprintHash("sha384", "2.16.840.1.101.3.4.2.2", 48),
        ImprintHash("sha512", "2.16.840.1.101.3.4.2.3", 64),
        ImprintHash("sha3_256", "2.16.840.1.101.3.4.2.8", 32),
        ImprintHash("sha3_384", "2.16.840.1.101.3.4.2.9", 48),
        ImprintHash("sha3_512", "2.16.840.1.101.3.4.2.10", 64),
        ImprintHash("sm3", "1.2.156.10197.1.401", 32),
    )
}
IMPRINT_HASH_BY_NAME = {h.name: h for h in IMPRINT_HASHES.values()}

# Accepted unless the operator narrows the list; SHA-1 only when explicitly configured.
DEFAULT_ACCEPTED_HASHES = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "sm3")

# The project's private arc: ITU-T X.667 UUID OID (2.25.<uuid>), registered by no one,
# unique by construction. .1.1 = default TSA policy, .2.1 = LedgerBinding extension.
PROJECT_ARC = "2.25.328647189271043128402055038478261803153"
DEFAULT_POLICY = PROJECT_ARC + ".1.1"
LEDGER_BINDING = LEDGER_BINDING_OID  # defined with its ASN.1 module in ledger/binding.py
