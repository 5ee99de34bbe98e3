"""The evidence kit ZIP (REC-6, S-13, issue 19 item 4): `fees.kit.plan_kit`'s layout
filled with bytes.

Per item: the original when it may be downloaded (S-10: ACTIVE storage only), the
`.tsr`, the certificate PDF, the CA chain, the ledger inclusion proof (C2SP tlog-proof,
the same text GET /ledger/tokens/tlog-proof/{index} serves) and, when given, the item's
RFC 4998 evidence record; at the top the ledger's note verifier key, `verify_kit.py`
(an independent checker: kit_files/), a README (kit_readme.py) saying what to compare
with an independent source, and `manifest.json` (format `tsa-evidence-kit/2`: the plan's
manifest plus each item's paths, the CA fingerprints, the ledger's origin and key, and
the SHA-256 and size of every other member). Every member name is ASCII
`[A-Za-z0-9._-]` and `/`: the plan names originals by digest, folders by serial.

The archive is written to a file object as it goes (originals are copied in chunks,
never held whole); it is deterministic for given inputs: every member carries the
kit's creation instant and members appear in plan order.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from tsa_server.clock.beijing import require_aware
from tsa_server.evidence.certificate import CertificateData
from tsa_server.evidence.certificate_pdf import render_certificate
from tsa_server.evidence.errors import EvidenceError
from tsa_server.evidence.kit_files import VERIFY_SCRIPT, verify_script
from tsa_server.evidence.kit_readme import ReadmeFacts, ca_certificates, render_readme
from tsa_server.evidence.records import Item, ItemMode, StorageState
from tsa_server.fees.access import Artefact, shell_word
from tsa_server.fees.deposit import DepositForm
from tsa_server.fees.items import Digests, EvidenceItem, Storage, StorageStatus
from tsa_server.fees.kit import KitPlan, plan_kit
from tsa_server.fees.policy import DEFAULT_POLICY
from tsa_server.fees.terms import Mode, initial_term

VKEY_PATH = "ledger.vkey"
SUMS_PATH = "SHA256SUMS"
MANIFEST_PATH = "manifest.json"
README_PATH = "README.txt"
ERS_NAME = "evidence-record.ers"
KIT_FORMAT = "tsa-evidence-kit/2"
CHUNK = 1 << 20

_STATUS = {
    StorageState.ACTIVE: StorageStatus.ACTIVE,
    StorageState.EXPIRED: StorageStatus.EXPIRED,
    StorageState.ORIGINAL_DELETED: StorageStatus.ORIGINAL_DELETED,
    StorageState.PURGED: StorageStatus.PURGED,
}


class KitError(EvidenceError):
    """The kit cannot be built (a stored original no longer matches its digest)."""


@dataclass(frozen=True)
class KitItem:
    """One item of a kit: the stored item, its certificate's content, the ledger
    inclusion proof (tlog-proof text; None when no checkpoint covers the entry yet) and
    its RFC 4998 evidence record (DER), written as `<serial>/evidence-record.ers`."""

    item: Item
    certificate: CertificateData
    proof: str | None
    evidence_record: bytes | None = None


@dataclass(frozen=True)
class KitSources:
    """What every item of a kit shares: the TSA's chain, the ledger's key and origin, a
    way to open a stored original by its blob key, and where the operator publishes what
    the recipient must compare (README.txt): its public URL, name, contact, witnesses."""

    chain_pem: bytes
    vkey: str
    origin: str
    open_original: Callable[[str], BinaryIO]
    public_url: str = ""
    operator: str = ""
    contact: str = ""
    witnesses: tuple[str, ...] = ()


def evidence_item(item: Item, certificate: CertificateData) -> EvidenceItem:
    """The fee layer's view of a stored item, enough for the kit's plan (status decides
    whether the original goes in; the serial is the public hex serial)."""
    size = item.size or 0
    storage = None
    mode = Mode.HASH_ONLY
    if item.mode is ItemMode.STORED and item.storage_state is not None:
        mode = Mode.STORED
        term = initial_term(size, certificate.gen_time, None, DEFAULT_POLICY)
        storage = Storage(term, 0, _STATUS[item.storage_state], term.anchor)
    return EvidenceItem(
        item_id=item.id,
        serial=certificate.serial_hex,
        mode=mode,
        digests=Digests(item.sha256, item.sha512, item.sm3),
        size=size,
        certified_at=certificate.gen_time,
        epoch=DEFAULT_POLICY.version_for(certificate.gen_time).epoch,
        form=DepositForm(
            depositor=item.depositor,
            work_content=item.title,
            work_title=item.title,
            statement=item.statement,
            handle=certificate.holder_handle or "",
            file_name=item.file_name,
            media_type=item.media_type,
        ),
        storage=storage,
    )


def _zip_time(t: datetime) -> tuple[int, int, int, int, int, int]:
    u = require_aware(t)
    return (max(u.year, 1980), u.month, u.day, u.hour, u.minute, u.second)


class _KitWriter:
    """Members in order, each hashed as written, with fixed times and permissions."""

    def __init__(self, out: BinaryIO, created_at: datetime) -> None:
        self.zip = zipfile.ZipFile(out, "w", allowZip64=True)
        self.when = _zip_time(created_at)
        self.files: list[dict[str, object]] = []

    def _info(self, path: str, compress: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, self.when)
        info.compress_type = compress
        info.external_attr = 0o644 << 16
        return info

    def add(self, path: str, data: bytes, *, listed: bool = True) -> None:
        self.zip.writestr(self._info(path, zipfile.ZIP_DEFLATED), data)
        if listed:
            self.files.append(
                {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            )

    def add_stream(self, path: str, source: BinaryIO, expected_sha256: str) -> None:
        digest, size = hashlib.sha256(), 0
        with self.zip.open(self._info(path, zipfile.ZIP_STORED), "w", force_zip64=True) as dst:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
        if digest.hexdigest() != expected_sha256:
            raise KitError(f"the stored original of {path} no longer matches its SHA-256")
        self.files.append({"path": path, "sha256": expected_sha256, "size": size})

    def close(self) -> None:
        self.zip.close()


def build_kit(
    items: Sequence[KitItem],
    sources: KitSources,
    created_at: datetime,
    out: BinaryIO,
    *,
    certificates: Sequence[bytes] | None = None,
) -> dict[str, object]:
    """Write the kit of `items` to `out` and return its manifest. `certificates` are the
    rendered PDFs in item order (rendered here when not given)."""
    created_at = require_aware(created_at, "created_at")
    by_id = {k.item.id: k for k in items}
    plan = plan_kit([evidence_item(k.item, k.certificate) for k in items], created_at)
    pdfs = dict(
        zip(
            [k.item.id for k in items],
            certificates or [render_certificate(k.certificate) for k in items],
            strict=True,
        )
    )
    writer = _KitWriter(out, created_at)
    try:
        for f in plan.files:
            kit_item = by_id[f.item_id]
            if f.artefact is Artefact.ORIGINAL:
                item = kit_item.item
                if item.blob_key is None:
                    raise KitError(f"item {item.id} has no stored original")
                with sources.open_original(item.blob_key) as source:
                    writer.add_stream(f.path, source, item.sha256)
            elif f.artefact is Artefact.TOKEN:
                writer.add(f.path, kit_item.certificate.tsr)
            elif f.artefact is Artefact.CERTIFICATE:
                writer.add(f.path, pdfs[f.item_id])
            elif f.artefact is Artefact.CA_CHAIN:
                writer.add(f.path, sources.chain_pem)
            elif f.artefact is Artefact.LEDGER_PROOF and kit_item.proof is not None:
                writer.add(f.path, kit_item.proof.encode())
        folders = {
            f.item_id: f.path.rsplit("/", 1)[0] for f in plan.files if f.artefact is Artefact.TOKEN
        }
        for k in items:
            if k.evidence_record is not None:
                writer.add(f"{folders[k.item.id]}/{ERS_NAME}", k.evidence_record)
        writer.add(VKEY_PATH, (sources.vkey.strip() + "\n").encode())
        writer.add(VERIFY_SCRIPT, verify_script())
        entries = _entries(plan, items, folders, {str(f["path"]) for f in writer.files})
        certs = ca_certificates(sources.chain_pem)
        facts = ReadmeFacts(
            KIT_FORMAT,
            sources.vkey.strip(),
            sources.origin,
            sources.public_url,
            sources.operator,
            sources.contact,
            sources.witnesses,
            certs,
        )
        writer.add(README_PATH, render_readme(facts, entries).encode())
        manifest = dict(
            plan.manifest,
            format=KIT_FORMAT,
            items=entries,
            ca_certificates=[c.as_json() for c in certs],
            ledger={
                "origin": sources.origin,
                "vkey": sources.vkey.strip(),
                "vkey_file": VKEY_PATH,
                "witnesses": list(sources.witnesses),
            },
            operator=_operator(sources),
            files=writer.files,
        )
        sums = "".join(f"{f['sha256']}  {f['path']}\n" for f in writer.files)
        writer.add(SUMS_PATH, sums.encode(), listed=False)
        writer.add(
            MANIFEST_PATH,
            json.dumps(manifest, ensure_ascii=False, indent=2).encode() + b"\n",
            listed=False,
        )
    finally:
        writer.close()
    return manifest


def _operator(sources: KitSources) -> dict[str, object]:
    """Where the operator publishes what the README asks the recipient to compare."""
    url = sources.public_url.rstrip("/")
    published = {
        "certificates": "/certs",
        "disclosure_statement": "/policy",
        "ledger_vkey": "/ledger/tokens/vkey",
        "ledger_checkpoint": "/ledger/tokens/checkpoint",
    }
    return {
        "name": sources.operator,
        "contact": sources.contact,
        "url": url,
        **{key: url + path if url else None for key, path in published.items()},
    }


_PATH_KEYS = {
    Artefact.ORIGINAL: "original",
    Artefact.TOKEN: "token",
    Artefact.CERTIFICATE: "certificate",
    Artefact.CA_CHAIN: "ca_chain",
    Artefact.LEDGER_PROOF: "inclusion_proof",
}


def _entries(
    plan: KitPlan, items: Sequence[KitItem], folders: dict[str, str], written: set[str]
) -> list[dict[str, object]]:
    """The plan's item entries with what was written: each member's path by role
    (`paths`, what verify_kit.py reads), the token's imprint and the storage state."""
    entries = []
    for entry, kit_item in zip(plan.manifest["items"], items, strict=True):  # type: ignore[call-overload]
        cert, item = kit_item.certificate, kit_item.item
        folder = folders[item.id]
        paths: dict[str, str | None] = {"folder": folder, **dict.fromkeys(_PATH_KEYS.values())}
        for f in plan.files:
            if f.item_id == item.id and f.path in written:
                paths[_PATH_KEYS[f.artefact]] = f.path
        ers = f"{folder}/{ERS_NAME}"
        paths["evidence_record"] = ers if ers in written else None
        algorithm = cert.hash_algorithm
        digest = {"sha512": item.sha512, "sm3": item.sm3}.get(algorithm) or item.sha256
        if paths["original"] is None:  # the plan's recipe names an original not here
            tsr = shell_word(cert.tsr_name)
            entry = dict(
                entry,
                verify=[
                    f"openssl ts -reply -in {tsr} -text",
                    f"openssl ts -verify -digest {digest} -in {tsr} -CAfile ca-chain.pem",
                ],
            )
        entries.append(
            dict(
                entry,
                storage=cert.storage_status,
                size_bytes=item.size,
                ledger_index=item.ledger_index,
                inclusion_proof=kit_item.proof is not None,
                holder_handle=cert.holder_handle,
                imprint={"algorithm": algorithm, "digest": digest},
                gen_time_posix=int(cert.gen_time.timestamp()),
                paths=paths,
                files=[p for p in [*entry["files"], ers] if p in written],
            )
        )
    return entries
