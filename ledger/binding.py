"""LedgerBinding (docs/spec/ledger.md L-07): the non-critical TSTInfo extension that ties a token
to its place in the ledger and to the latest checkpoint known when it was signed.

    LedgerBinding ::= SEQUENCE {
       version      INTEGER { v1(1) },
       origin       UTF8String,             -- checkpoint origin of the ledger
       leafIndex    INTEGER (0..MAX),       -- the index this token occupies
       anchorSize   INTEGER (0..MAX),       -- size of the latest checkpoint known at signing
       anchorRoot   OCTET STRING (SIZE(32)) -- its root hash
    }

Object identifier: LEDGER_BINDING_OID below (project arc, ITU-T X.667 UUID form).
Invariants an auditor checks: anchorSize <= leafIndex and anchorRoot = MTH(D[0:anchorSize]).
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core, tsp

# 2.25.<uuid>: the project arc (tsa_server.rfc3161.oids.PROJECT_ARC), .2.1 = LedgerBinding.
LEDGER_BINDING_OID = "2.25.328647189271043128402055038478261803153.2.1"


class _LedgerBindingAsn1(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("version", core.Integer),
        ("origin", core.UTF8String),
        ("leaf_index", core.Integer),
        ("anchor_size", core.Integer),
        ("anchor_root", core.OctetString),
    ]


@dataclass(frozen=True)
class LedgerBinding:
    origin: str
    leaf_index: int
    anchor_size: int
    anchor_root: bytes

    def encode(self) -> bytes:
        """DER of the LedgerBinding value (the extnValue's content)."""
        encoded: bytes = _LedgerBindingAsn1(
            {
                "version": 1,
                "origin": self.origin,
                "leaf_index": self.leaf_index,
                "anchor_size": self.anchor_size,
                "anchor_root": self.anchor_root,
            }
        ).dump()
        return encoded

    @classmethod
    def decode(cls, der: bytes) -> LedgerBinding:
        """Parse a LedgerBinding; ValueError when it is not a v1 binding in DER."""
        try:
            value = _LedgerBindingAsn1.load(der, strict=True)
            native = value.native
        except Exception as exc:  # asn1crypto raises several types for bad input
            raise ValueError(f"not a LedgerBinding: {type(exc).__name__}") from None
        if native["version"] != 1 or len(native["anchor_root"]) != 32:
            raise ValueError("unsupported LedgerBinding version or root size")
        if native["leaf_index"] < 0 or native["anchor_size"] < 0:
            raise ValueError("negative index or size in LedgerBinding")
        if value.dump(force=True) != der:
            raise ValueError("LedgerBinding is not DER")
        return cls(
            native["origin"], native["leaf_index"], native["anchor_size"], native["anchor_root"]
        )


def find_binding(tst_info: tsp.TSTInfo) -> LedgerBinding | None:
    """The LedgerBinding among an asn1crypto TSTInfo's extensions, if any."""
    extensions = tst_info["extensions"]
    if extensions.native is None:
        return None
    for extension in extensions:
        if extension["extn_id"].dotted == LEDGER_BINDING_OID:
            return LedgerBinding.decode(extension["extn_value"].contents)
    return None
