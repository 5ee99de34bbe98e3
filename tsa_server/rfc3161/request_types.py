"""What a time-stamp request parser is given and gives back: the acceptance profile and
an accepted request. Shared by the strict parser (request.py) and the fast path
(request_lean.py), which must agree on both."""

from __future__ import annotations

from dataclasses import dataclass

from tsa_server.pki import der
from tsa_server.rfc3161.oids import ImprintHash


@dataclass(frozen=True)
class Profile:
    """What the TSA accepts: imprint hashes by name and policy OIDs (first = default)."""

    accepted_hashes: frozenset[str]
    policies: tuple[str, ...]

    @property
    def default_policy(self) -> str:
        return self.policies[0]


@dataclass(frozen=True)
class TimeStampRequest:
    """A request that passed every acceptance rule."""

    hash: ImprintHash
    digest: bytes
    policy: str
    nonce: int | None
    cert_req: bool

    @property
    def imprint_der(self) -> bytes:
        """The MessageImprint, re-encoded in DER with absent hash parameters."""
        oid = der.tlv(der.SEQUENCE, der.oid(self.hash.oid))
        return der.tlv(der.SEQUENCE, oid + der.tlv(der.OCTET_STRING, self.digest))
