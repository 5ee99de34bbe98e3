"""What a token is verified against (`VerifyOptions`): its own module so that the
checks (verify_checks.py, verify_tsa.py) and the orchestrator (verify.py) depend on it
without depending on each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from asn1crypto import x509
from cryptography import x509 as pyca_x509

from .verify_load import CertificateLike, CrlLike


@dataclass(frozen=True, eq=False)
class VerifyOptions:
    """What to verify a token against. Give at most one of ``data``, ``stream``, ``digest``.

    ``trust_roots`` and ``extra_certs`` take asn1crypto or pyca certificates (or DER/PEM
    bytes of one); ``extra_certs`` supplies the TSA certificate and intermediates for
    tokens that do not embed them. ``crls``, when given, must cover every certificate
    below the root. ``digest_algorithm`` ("sha256", "SHA-256") pins the imprint's
    algorithm when ``digest`` is given. ``tsa_name`` is an RFC 4514 string
    ("CN=TSA,O=Example"), a Name object, or a bare common name.
    """

    trust_roots: Sequence[CertificateLike] = ()
    extra_certs: Sequence[CertificateLike] = ()
    crls: Sequence[CrlLike] = ()
    data: bytes | None = None
    stream: BinaryIO | None = None
    digest: bytes | None = None
    digest_algorithm: str | None = None
    nonce: int | None = None
    policy: str | None = None
    tsa_name: str | x509.Name | pyca_x509.Name | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("data", "stream", "digest") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of data, stream and digest, not {given}")
