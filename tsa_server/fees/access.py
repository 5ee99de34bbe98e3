"""What may be downloaded in which state, and what a certificate carries (S-10, A-6, REC-4).

Only the stored original is ever locked (EXPIRED, and gone once deleted or purged). The
certificate PDF, the `.tsr` token, the CA chain, the ledger inclusion proof and the hash
record stay downloadable and verifiable for every item in every state: they are the
legal proof, and hash-only items have them without any storage.
"""

from __future__ import annotations

import enum
import shlex
from datetime import datetime
from urllib.parse import quote

from tsa_server.clock.beijing import display, utc_text

from .errors import OriginalLocked
from .items import EvidenceItem, StorageStatus
from .terms import Mode


class Artefact(enum.StrEnum):
    ORIGINAL = "original"
    CERTIFICATE = "certificate"  # the PDF
    TOKEN = "token"  # the RFC 3161 .tsr
    CA_CHAIN = "ca_chain"
    LEDGER_PROOF = "ledger_proof"
    HASH_RECORD = "hash_record"


PROOFS = frozenset(Artefact) - {Artefact.ORIGINAL}
"""A-6 / REC-4: never held hostage to storage fees."""


def downloadable(item: EvidenceItem) -> frozenset[Artefact]:
    """S-10: the proofs always; the original only while it is stored and ACTIVE."""
    if item.status is StorageStatus.ACTIVE:
        return frozenset(Artefact)
    return PROOFS


def require_download(item: EvidenceItem, artefact: Artefact) -> None:
    """Raise `OriginalLocked` unless `artefact` of `item` may be served now (R-2)."""
    if artefact not in downloadable(item):
        if item.status is StorageStatus.EXPIRED:
            raise OriginalLocked(
                "storage expired: the original cannot be viewed or downloaded"
                " (the certificate and token remain available)"
            )
        raise OriginalLocked("no stored original for this item")


def storage_text(item: EvidenceItem) -> str:
    """Storage status line for the certificate and the evidence detail."""
    s = item.storage
    if s is None:
        return "hash only (no original stored)"
    if s.status is StorageStatus.ACTIVE:
        return f"original stored until {display(s.expires_at)} ({utc_text(s.expires_at)})"
    return {
        StorageStatus.EXPIRED: "original locked (storage expired)",
        StorageStatus.ORIGINAL_DELETED: "original deleted by the depositor",
        StorageStatus.PURGED: "original purged after the grace period",
    }[s.status]


def shell_word(path: str) -> str:
    """`path` as exactly one POSIX shell word that no command reads as an option: a
    depositor's file name goes into commands that third parties run."""
    return shlex.quote("./" + path if path.startswith("-") else path)


def openssl_recipe(item: EvidenceItem, file_name: str = "") -> tuple[str, str, str]:
    """REC-4: the three-line `openssl ts -verify` recipe (every argument shell-quoted)."""
    name = shell_word(file_name or item.form.file_name or "original")
    tsr = shell_word(f"{item.serial}.tsr")
    return (
        f"sha256sum {name}   # must print {item.digests.sha256}",
        f"openssl ts -reply -in {tsr} -text",
        f"openssl ts -verify -data {name} -in {tsr} -CAfile ca-chain.pem",
    )


def certificate_fields(
    item: EvidenceItem,
    *,
    tsa_name: str,
    policy_oid: str,
    hash_algorithm: str,
    verify_base_url: str,
    issued_at: datetime | None = None,
) -> dict[str, object]:
    """REC-4: the content of the certificate PDF, in print order (rendering is elsewhere)."""
    d = item.digests
    return {
        "serial": item.serial,
        "sha256": d.sha256,
        "sha512": d.sha512,
        "sm3": d.sm3,
        "file_name": item.form.file_name,
        "size_bytes": item.size,
        "gen_time_utc": utc_text(item.certified_at),
        "gen_time_beijing": display(item.certified_at),
        "tsa_name": tsa_name,
        "policy_oid": policy_oid,
        "hash_algorithm": hash_algorithm,
        "depositor": item.form.depositor,
        "handle": item.form.handle,
        "work_title": item.form.work_title,
        "work_content": item.form.work_content,
        "statement": item.form.statement,
        "mode": "stored" if item.mode is Mode.STORED else "hash only",
        "storage_at_issue": storage_text(item),
        "verify_url": f"{verify_base_url.rstrip('/')}/verify?serial={quote(item.serial)}",
        "openssl_recipe": openssl_recipe(item),
        "issued_at_utc": utc_text(issued_at) if issued_at else utc_text(item.certified_at),
    }
