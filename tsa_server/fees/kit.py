"""The evidence kit: one ZIP per item or selection, ready for court (REC-6, S-13).

`plan_kit` decides the ZIP's layout and its `manifest.json`; the evidence layer fills
in the bytes. The original is included only when it may be downloaded (S-10); the
proofs always are (A-6). Paths are built from sanitised names: a file name can never
escape its folder inside the archive.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tsa_server.beijing_calendar import display, require_aware, utc_text

from .access import Artefact, downloadable, openssl_recipe, storage_text
from .items import EvidenceItem

KIT_FORMAT = "tsa-evidence-kit/1"
MAX_NAME_CHARS = 150  # keeps every archive path far below common 255-byte limits


@dataclass(frozen=True)
class KitFile:
    path: str  # inside the ZIP, "/"-separated
    artefact: Artefact
    item_id: str


@dataclass(frozen=True)
class KitPlan:
    files: tuple[KitFile, ...]
    manifest: dict[str, object]
    readme: str


def safe_name(name: str, fallback: str = "original") -> str:
    """The last path component, without control characters or a leading dot."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip().lstrip(".")
    return base[:MAX_NAME_CHARS] or fallback


def _folder(item: EvidenceItem) -> str:
    return re.sub(r"[^0-9A-Za-z_-]", "_", item.serial)[:64] or item.item_id


def plan_kit(items: Sequence[EvidenceItem], created_at: datetime) -> KitPlan:
    """REC-6: files and manifest of the kit for `items` (in the order given)."""
    created_at = require_aware(created_at, "created_at")
    files: list[KitFile] = []
    entries = []
    for item in items:
        folder = _folder(item)
        mine = [
            KitFile(f"{folder}/{folder}.tsr", Artefact.TOKEN, item.item_id),
            KitFile(f"{folder}/certificate.pdf", Artefact.CERTIFICATE, item.item_id),
            KitFile(f"{folder}/ca-chain.pem", Artefact.CA_CHAIN, item.item_id),
            KitFile(f"{folder}/inclusion-proof.tlog", Artefact.LEDGER_PROOF, item.item_id),
        ]
        name = safe_name(item.form.file_name)
        with_original = Artefact.ORIGINAL in downloadable(item)
        if with_original:
            mine.insert(0, KitFile(f"{folder}/original/{name}", Artefact.ORIGINAL, item.item_id))
        files.extend(mine)
        d = item.digests
        entries.append(
            {
                "serial": item.serial,
                "item_id": item.item_id,
                "file_name": item.form.file_name,
                "size_bytes": item.size,
                "digests": {
                    k: v
                    for k, v in (("sha256", d.sha256), ("sha512", d.sha512), ("sm3", d.sm3))
                    if v
                },
                "gen_time_utc": utc_text(item.certified_at),
                "gen_time_beijing": display(item.certified_at),
                "mode": item.mode.value,
                "storage": storage_text(item),
                "original_included": with_original,
                "files": [f.path for f in mine],
                "verify": list(openssl_recipe(item, f"original/{name}")),
            }
        )
    manifest: dict[str, object] = {
        "format": KIT_FORMAT,
        "created_at": utc_text(created_at),
        "items": entries,
    }
    return KitPlan(tuple(files), manifest, README)


README = """\
Evidence kit

Each folder is one evidence item, named after the time-stamp token's serial number:
  <serial>.tsr          the RFC 3161 time-stamp token (the proof)
  certificate.pdf       the human-readable certificate, with the token embedded
  ca-chain.pem          the certificate chain of the time-stamping authority
  inclusion-proof.tlog  the proof that the token is in the authority's public ledger
  original/             the original file, when it was stored and is included

To verify without trusting anyone, in the item's folder:
  sha256sum original/<file>        (must equal the digest in manifest.json)
  openssl ts -verify -data original/<file> -in <serial>.tsr -CAfile ca-chain.pem

Do not modify the original in any way (even re-saving it changes its digest).
Submit the files electronically (USB stick, disc, the court's evidence system or a
download link); a paper printout is not the original.
"""
