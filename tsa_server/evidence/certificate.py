"""What the PDF evidence certificate of one certified item states (REC-4, S-11).

`certificate_data` gathers it from the stored item and its RFC 3161 token (genTime,
policy, TSA name and hash algorithm come from the token, never from the database):
serial, digests, file, genTime, TSA and its operator ([disclosure]), policy, mode,
depositor and organisation, work content, the applicant's statement, handle, storage
status, the earlier certificates of the same digest, the public verification page's URL
and an `openssl ts -verify` recipe, with the `.tsr` itself, so the certificate alone is
enough to verify the original offline. `render_certificate` (certificate_pdf.py) draws
it; certificate_sign.py signs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from asn1crypto import x509 as asn1_x509

from ledger.serials import serial_text
from tsa_server.clock.beijing import display, require_aware, utc_text
from tsa_server.evidence.records import Item, ItemMode, StorageState
from tsa_server.rfc3161 import response
from tsa_server.rfc3161.verify import VerifyOptions, verify_token
from tsa_server.rfc3161.verify_load import TokenDecodeError, load_token, name_text

VERIFY_PATH = "/verify/serial/"
"""Public, no login: a readable page with the token's checks, genTime, the TSA and the
ledger inclusion (web/verify/page.py)."""
NOT_GIVEN = "not given"

_STORAGE_TEXT = {
    StorageState.ACTIVE: "original stored (viewable and downloadable)",
    StorageState.EXPIRED: "original locked: storage expired (certificate and token remain valid)",
    StorageState.ORIGINAL_DELETED: "original deleted by the depositor (hash record kept)",
    StorageState.PURGED: "original purged after the grace period (hash record kept)",
}


class NotCertified(ValueError):
    """The item has no usable time-stamp token (yet): no certificate can be issued."""


@dataclass(frozen=True)
class Operator:
    """The TSA and who runs it, as [disclosure] states them (empty: not configured)."""

    name: str = ""
    organisation: str = ""
    address: str = ""
    contact: str = ""
    policy_url: str = ""


@dataclass(frozen=True)
class Earlier:
    """An earlier certificate of the same digest by the same organisation (issue 19
    item 5): a new deposit of it is allowed, and says so."""

    item_id: str
    serial: int
    gen_time: datetime

    @property
    def serial_hex(self) -> str:
        return serial_text(self.serial)


def earlier_items(item: Item, same_digest: Iterable[Item]) -> tuple[Earlier, ...]:
    """The certified items among `same_digest` (the organisation's items of this
    SHA-256) certified before `item`, oldest first."""
    mine = item.certified_at
    found = [
        Earlier(other.id, other.serial, other.certified_at)
        for other in same_digest
        if other.id != item.id
        and other.serial is not None
        and other.certified_at is not None
        and (mine is None or (other.certified_at, other.id) < (mine, item.id))
    ]
    return tuple(sorted(found, key=lambda e: (e.gen_time, e.item_id)))


@dataclass(frozen=True)
class CertificateData:
    """Everything printed on one certificate. `digests` are (algorithm, lowercase hex)
    pairs, SHA-256 first; `tsr` is the TimeStampResp DER embedded as `<serial>.tsr`."""

    serial: int
    item_id: str
    file_name: str
    size: int | None
    digests: tuple[tuple[str, str], ...]
    gen_time: datetime
    tsa_name: str
    policy_oid: str
    hash_algorithm: str
    mode: str  # "stored" or "hash only"
    storage_status: str
    depositor: str
    statement: str
    verify_url: str
    tsr: bytes
    title: str = ""
    holder_handle: str | None = None
    ledger_index: int | None = None
    work_content: str = ""
    organisation: str = ""
    operator: Operator = field(default_factory=Operator)
    history: tuple[Earlier, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "gen_time", require_aware(self.gen_time, "gen_time"))

    @property
    def serial_hex(self) -> str:
        return serial_text(self.serial)

    @property
    def tsr_name(self) -> str:
        return f"{self.serial_hex}.tsr"


def verify_url(base_url: str, serial: int) -> str:
    return f"{base_url.rstrip('/')}{VERIFY_PATH}{quote(serial_text(serial))}"


def tsr_of(token_or_reply: bytes) -> bytes:
    """A TimeStampResp (what `openssl ts -verify -in` reads) from a stored token or reply."""
    try:
        loaded = load_token(token_or_reply)
    except TokenDecodeError as exc:
        raise NotCertified(f"the stored token cannot be read: {exc}") from None
    if loaded.content_info is None:
        raise NotCertified("the stored reply carries no token")
    if loaded.kind == "TimeStampResp":
        return bytes(token_or_reply)
    return response.granted(loaded.content_info.dump())


def storage_status_text(item: Item, expires_at: datetime | None = None) -> str:
    if item.mode is ItemMode.HASH_ONLY or item.storage_state is None:
        return "hash only: no original stored, only its digest is certified"
    text = _STORAGE_TEXT[item.storage_state]
    if item.storage_state is StorageState.ACTIVE and expires_at is not None:
        until = expires_at.replace(microsecond=0)
        text = f"original stored until {display(until)} ({utc_text(until)})"
    return text


def certificate_data(
    item: Item,
    *,
    tsa_chain: Sequence[asn1_x509.Certificate],
    base_url: str,
    holder_handle: str | None = None,
    storage_expires_at: datetime | None = None,
    work_content: str = "",
    organisation: str = "",
    operator: Operator | None = None,
    same_digest: Iterable[Item] = (),
) -> CertificateData:
    """The certificate of a stored item: token fields read from its token, the rest from
    the item (`work_content` from its terms, `organisation` the account's name,
    `same_digest` the organisation's items of its SHA-256). NotCertified when the item
    has no token."""
    if item.token is None or item.serial is None:
        raise NotCertified("the item is not certified yet")
    tsr = tsr_of(item.token)
    fields = verify_token(tsr, VerifyOptions(extra_certs=tuple(tsa_chain))).fields
    if fields is None:
        raise NotCertified("the stored token cannot be read")
    tsa_name = fields.tsa_name or (fields.signer.subject if fields.signer else "")
    if not tsa_name and tsa_chain:
        tsa_name = name_text(tsa_chain[0].subject)
    digests = [("SHA-256", item.sha256)]
    digests += [(n, v) for n, v in (("SHA-512", item.sha512), ("SM3", item.sm3)) if v]
    return CertificateData(
        serial=fields.serial_number,
        item_id=item.id,
        file_name=item.file_name,
        size=item.size,
        digests=tuple(digests),
        gen_time=fields.gen_time,
        tsa_name=tsa_name,
        policy_oid=fields.policy,
        hash_algorithm=fields.imprint_algorithm,
        mode="stored" if item.mode is ItemMode.STORED else "hash only",
        storage_status=storage_status_text(item, storage_expires_at),
        depositor=item.depositor,
        statement=item.statement or NOT_GIVEN,
        verify_url=verify_url(base_url, fields.serial_number),
        tsr=tsr,
        title=item.title,
        holder_handle=holder_handle or None,
        ledger_index=item.ledger_index,
        work_content=work_content or NOT_GIVEN,
        organisation=organisation,
        operator=operator or Operator(name=tsa_name),
        history=earlier_items(item, same_digest),
    )


def recipe(data: CertificateData, file_name: str = "FILE") -> tuple[str, ...]:
    """REC-4: how to verify the original with nothing but openssl."""
    return (
        f"sha256sum {file_name}    # must print {data.digests[0][1]}",
        f"openssl ts -reply -in {data.tsr_name} -text",
        f"openssl ts -verify -data {file_name} -in {data.tsr_name} -CAfile ca-chain.pem",
    )
