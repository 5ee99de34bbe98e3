"""The evidence kit: one ZIP per item or selection, ready for court (REC-6, S-13).

`plan_kit` decides the ZIP's layout and its `manifest.json`; the evidence layer fills
in the bytes. The original is included only when it may be downloaded (S-10); the
proofs always are (A-6).

Kits go to third parties (courts, experts) who run the commands they document, so no
name a depositor chose ever becomes a path or a command: the original is
`original/<sha256>.<ext>` (the extension only when it is 1-16 ASCII letters and
digits), the name it was deposited under stays data in `manifest.json`, and every
argument of a documented command is shell-quoted anyway (access.shell_word).
`safe_name` makes a display name fit one path component of any common filesystem:
no directory part, no control characters, at most MAX_NAME_BYTES bytes of UTF-8.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tsa_server.clock.beijing import display, require_aware, utc_text

from .access import Artefact, downloadable, openssl_recipe, storage_text
from .items import EvidenceItem

KIT_FORMAT = "tsa-evidence-kit/1"
#: Longest path component, in bytes of UTF-8: ext4, XFS, btrfs, APFS and NTFS (in
#: UTF-16 units, which this also bounds) all stop at 255, whatever the characters.
MAX_NAME_BYTES = 255
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}")


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


def safe_name(name: str, fallback: str = "original", max_bytes: int = MAX_NAME_BYTES) -> str:
    """The last path component, without control or format characters or a leading dot,
    cut to `max_bytes` bytes of UTF-8 on a character boundary (its extension kept)."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip().lstrip(".")
    if len(base.encode()) > max_bytes:
        stem, dot, ext = base.rpartition(".")
        ext = dot + ext if dot and stem and len((dot + ext).encode()) <= 32 else ""
        base = utf8_prefix(base[: len(base) - len(ext)], max_bytes - len(ext.encode())) + ext
    return base or fallback


def utf8_prefix(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 form has at most `max_bytes` bytes."""
    return text.encode()[: max(0, max_bytes)].decode("utf-8", "ignore")


def original_name(item: EvidenceItem) -> str:
    """The original's member name in a kit: its SHA-256, plus the deposited name's
    extension when that is plain (`.pdf`, `.psd`), so viewers still open it."""
    ext = item.form.file_name.rpartition(".")[2] if "." in item.form.file_name else ""
    suffix = "." + ext if _EXTENSION.fullmatch("." + ext) else ""
    return item.digests.sha256 + suffix


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
        original = f"original/{original_name(item)}"
        with_original = Artefact.ORIGINAL in downloadable(item)
        if with_original:
            mine.insert(0, KitFile(f"{folder}/{original}", Artefact.ORIGINAL, item.item_id))
        files.extend(mine)
        d = item.digests
        entries.append(
            {
                "serial": item.serial,
                "item_id": item.item_id,
                "file_name": item.form.file_name,  # as deposited: data, never a path
                "original_file": original,
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
                "verify": list(openssl_recipe(item, original)),
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
  original/             the original file, when it was stored and is included, named
                        <sha256>.<ext> after its digest; the name it was deposited
                        under is "file_name" in manifest.json

To verify without trusting anyone, in the item's folder (manifest.json lists these
commands for each item under "verify"):
  sha256sum original/<sha256>.<ext>      (must print the digest it is named after)
  openssl ts -verify -data original/<sha256>.<ext> -in <serial>.tsr -CAfile ca-chain.pem

Do not modify the original in any way (even re-saving it changes its digest).
Submit the files electronically (USB stick, disc, the court's evidence system or a
download link); a paper printout is not the original.
"""
