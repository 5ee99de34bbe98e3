"""What every check of the RFC 3161 token verifier shares: the `Context` one verification
fills in as checks pass, the three ways a check does not pass (`Failed`, `CannotCheck`,
`Skipped`), and the genTime reader the verifier and the audit's lean path both use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import cms, crl, tsp, x509

from .verify_load import LoadedToken
from .verify_options import VerifyOptions

_GEN_TIME = re.compile(
    r"^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})(?:[.,]([0-9]+))?Z$"
)


class Failed(Exception):
    """The token fails this check."""


class CannotCheck(Exception):
    """The check could not be performed; the token is not valid."""


class Skipped(Exception):
    """The caller did not ask for this check."""


@dataclass
class Context:
    """State shared by the checks of one verification; filled in as checks pass."""

    loaded: LoadedToken
    options: VerifyOptions
    trust_roots: list[x509.Certificate]
    extra_certs: list[x509.Certificate]
    crls: list[crl.CertificateList]
    signed_data: cms.SignedData | None = None
    embedded: list[x509.Certificate] = field(default_factory=list)
    econtent: bytes | None = None
    tst_info: tsp.TSTInfo | None = None
    gen_time: datetime | None = None
    gen_time_text: str | None = None
    signer_info: cms.SignerInfo | None = None
    signer_cert: x509.Certificate | None = None
    path: tuple[x509.Certificate, ...] = ()

    def need_tst(self) -> tsp.TSTInfo:
        if self.tst_info is None:
            raise CannotCheck("the token's TSTInfo could not be read")
        return self.tst_info

    def need_signer_info(self) -> cms.SignerInfo:
        if self.signer_info is None:
            raise CannotCheck("there is no single SignerInfo")
        return self.signer_info

    def need_signer_cert(self) -> x509.Certificate:
        if self.signer_cert is None:
            raise CannotCheck("the signer certificate was not found")
        return self.signer_cert


def parse_gen_time(raw: bytes) -> tuple[datetime, str]:
    """genTime (RFC 3161 §2.4.2: YYYYMMDDhhmmss[.s...]Z) as a UTC datetime and ISO text.

    The datetime keeps microseconds; the text keeps every fractional digit given.
    """
    match = _GEN_TIME.match(raw.decode("ascii", "replace"))
    if not match:
        raise Failed(f"genTime {raw!r} is not YYYYMMDDhhmmss[.fraction]Z (RFC 3161 §2.4.2)")
    y, mo, d, h, mi, s, frac = match.groups()
    micro = int((frac or "").ljust(6, "0")[:6])
    when = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    text = f"{y}-{mo}-{d}T{h}:{mi}:{s}" + (f".{frac}" if frac else "") + "Z"
    return when, text
