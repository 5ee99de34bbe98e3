"""Checking an evidence kit ZIP (format tsa-evidence-kit/2, evidence/kit_zip.py) as a
relying party brings it: the archive opened safely, every member against the SHA-256
and size its manifest lists, the inclusion proof against the signed checkpoint note
with THIS TSA's ledger key (not the key the kit ships: that one is only compared), the
certificate PDF it holds (pdf.py), and the token with the digest it must certify: the
kit's original hashed with the token's algorithm when the kit holds it, otherwise the
digest the manifest records. The token is verified afterwards by POST /verify's
verifier (`combine`).

The archive comes from anyone. It is read in memory, never extracted: at most
MAX_MEMBERS members, each name a plain relative path (`[A-Za-z0-9._-]` segments, no
`..`, no absolute path), no encryption, stored or deflated only, a bounded total of
declared sizes, no member that compresses better than MAX_RATIO to one (a zip bomb),
and every read bounded by the member's declared size.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
import zlib
from typing import Any

from ledger.checkpoint import open_checkpoint
from ledger.errors import LedgerError
from ledger.hashing import leaf_hash
from ledger.note_keys import parse_vkey
from ledger.proof_file import ProofFile
from ledger.proofs import verify_inclusion
from tsa_server.evidence.checking import DocumentCheck, DocumentRejected, Findings, Trust
from tsa_server.evidence.checking.pdf import check_certificate
from tsa_server.evidence.checking.token_facts import DocumentToken, document_token
from tsa_server.rfc3161.verify_crypto import HASHES, new_hash

FORMAT = "tsa-evidence-kit/2"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
VKEY = "ledger.vkey"
MAX_MEMBERS = 64
#: Sum of the members' declared sizes (originals are stored, text deflates ~5:1).
MAX_TOTAL = 64 << 20
#: Largest manifest, proof, key or token read.
MAX_TEXT = 1 << 20
#: Uncompressed to compressed, for members past 64 KiB.
MAX_RATIO = 100
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*", re.ASCII)
_CHUNK = 1 << 20


def open_kit(body: bytes) -> zipfile.ZipFile:
    """The archive, its member list checked; DocumentRejected otherwise."""
    if not body.startswith(b"PK\x03\x04"):
        raise DocumentRejected(400, "this file is not a ZIP archive (an evidence kit is one)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise DocumentRejected(400, f"the ZIP archive cannot be read: {exc}") from None
    if len(infos) > MAX_MEMBERS:
        raise DocumentRejected(413, f"the archive has {len(infos)} members, at most {MAX_MEMBERS}")
    names: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if not _SAFE.fullmatch(name) or ".." in name.split("/"):
            raise DocumentRejected(400, f"refused member name {name[:80]!r}: not a plain path")
        if name in names:
            raise DocumentRejected(400, f"the member {name} appears twice")
        names.add(name)
        if info.flag_bits & 0x1:
            raise DocumentRejected(400, f"the member {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DocumentRejected(400, f"the member {name} uses an unsupported compression")
        if info.file_size > 64 * 1024 and info.file_size > MAX_RATIO * max(1, info.compress_size):
            ratio = info.file_size // max(1, info.compress_size)
            raise DocumentRejected(
                413, f"the member {name} expands {ratio}:1 (at most {MAX_RATIO}:1): refused"
            )
        total += info.file_size
        if total > MAX_TOTAL:
            raise DocumentRejected(
                413, f"the archive expands to more than {MAX_TOTAL >> 20} MiB: refused"
            )
    return archive


def _read(archive: zipfile.ZipFile, name: str, limit: int) -> bytes | None:
    """A member's bytes, at most `limit` and its declared size; None if damaged."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise DocumentRejected(413, f"the member {name} is larger than {limit} bytes")
    try:
        with archive.open(info) as member:
            return member.read(info.file_size + 1)[: info.file_size + 1]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
        return None


def _digest(archive: zipfile.ZipFile, name: str, algorithm: str | None) -> tuple[str, bytes | None]:
    """(SHA-256 hex, digest with `algorithm`) of a member, hashed in chunks."""
    sha256 = hashlib.sha256()
    other = new_hash(algorithm) if algorithm in HASHES else None
    with archive.open(name) as member:
        while chunk := member.read(_CHUNK):
            sha256.update(chunk)
            if other is not None:
                other.update(chunk)
    return sha256.hexdigest(), other.finalize() if other is not None else None


def check_kit(body: bytes, trust: Trust) -> Findings:
    """The checks of an evidence kit of one item and the token it holds."""
    archive = open_kit(body)
    manifest = _manifest(archive)
    items = manifest.get("items")
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
        raise DocumentRejected(
            400,
            "this page checks a kit of one item (as an item page downloads it); run the kit's "
            "verify_kit.py for a kit of several",
        )
    item: dict[str, Any] = items[0]
    paths = item.get("paths") if isinstance(item.get("paths"), dict) else {}
    assert isinstance(paths, dict)
    checks = [_format(manifest)]
    files_check, contents = _files(archive, manifest, paths)
    checks.append(files_check)
    tsr = contents.get(str(paths.get("token")))
    token = document_token(tsr) if tsr is not None else None
    facts: list[tuple[str, str]] = [("kit_format", str(manifest.get("format")))]
    if item.get("serial"):
        facts.append(("serial", str(item["serial"])))
    checks += _ledger(archive, contents, paths, token, trust)
    checks += _certificate(archive, paths, tsr, trust)
    digest, source, original_check = _compared(archive, item, paths, token)
    checks.append(original_check)
    if token is not None and digest is not None:
        facts.append(("certified_digest", f"{token.facts.algorithm.upper()} {digest}"))
    return Findings(
        "kit",
        tuple(checks),
        tsr,
        digest,
        token.facts.algorithm if token is not None else None,
        source,
        tuple(facts),
    )


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    if MANIFEST not in archive.namelist():
        raise DocumentRejected(400, "the archive has no manifest.json: it is not an evidence kit")
    raw = _read(archive, MANIFEST, MAX_TEXT)
    try:
        manifest = json.loads(raw or b"")
    except (ValueError, RecursionError):
        raise DocumentRejected(400, "the kit's manifest.json is not JSON") from None
    if not isinstance(manifest, dict):
        raise DocumentRejected(400, "the kit's manifest.json is not an object")
    return manifest


def _format(manifest: dict[str, Any]) -> DocumentCheck:
    found = manifest.get("format")
    if found == FORMAT:
        return DocumentCheck("kit_format", True, f"the manifest says {FORMAT}")
    return DocumentCheck(
        "kit_format", False, f"the manifest says {str(found)[:80]!r}, not {FORMAT}"
    )


def _files(
    archive: zipfile.ZipFile, manifest: dict[str, Any], paths: dict[str, Any]
) -> tuple[DocumentCheck, dict[str, bytes]]:
    """Every listed member's SHA-256 and size; the small ones' bytes for the next checks."""
    listed = manifest.get("files")
    if not isinstance(listed, list):
        return DocumentCheck("kit_files", False, "the manifest lists no files"), {}
    members = set(archive.namelist())
    changed, missing, contents = [], [], {}
    small = {paths.get("token"), paths.get("inclusion_proof"), VKEY}
    seen: set[str] = set()
    for entry in listed:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or path not in members:
            missing.append(str(path)[:80])
            continue
        seen.add(path)
        if path in small:
            data = _read(archive, path, MAX_TEXT)
            if data is not None:
                contents[path] = data
            sha = hashlib.sha256(data).hexdigest() if data is not None else None
            size = len(data) if data is not None else -1
        else:
            try:
                sha, _ = _digest(archive, path, None)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
                sha = None
            size = archive.getinfo(path).file_size
        if sha != entry.get("sha256") or size != entry.get("size"):
            changed.append(path)
    unlisted = sorted(members - seen - {MANIFEST, SUMS})
    problems = []
    if changed:
        problems.append("CHANGED since the kit was made: " + ", ".join(changed))
    if missing:
        problems.append("listed but missing: " + ", ".join(missing))
    if unlisted:
        problems.append("not listed in the manifest: " + ", ".join(unlisted[:10]))
    if problems:
        return DocumentCheck("kit_files", False, "; ".join(problems)), contents
    return DocumentCheck(
        "kit_files", True, f"all {len(seen)} files have the SHA-256 and size the manifest lists"
    ), contents


def _ledger(
    archive: zipfile.ZipFile,
    contents: dict[str, bytes],
    paths: dict[str, Any],
    token: DocumentToken | None,
    trust: Trust,
) -> list[DocumentCheck]:
    checks = []
    shipped = contents.get(VKEY, b"").decode("utf-8", "replace").strip()
    if shipped == trust.ledger_vkey.strip():
        checks.append(
            DocumentCheck("ledger_key", True, "the kit's ledger.vkey is this TSA's ledger key")
        )
    else:
        checks.append(
            DocumentCheck("ledger_key", False, "the kit's ledger.vkey is not this TSA's ledger key")
        )
    proof_text = contents.get(str(paths.get("inclusion_proof")))
    if proof_text is None:
        why = (
            "the kit holds no inclusion proof (no checkpoint covered the entry when it was "
            "made): the ledger section below looks the token up"
        )
        return [*checks, DocumentCheck("ledger_inclusion", True, why, skipped=True)]
    if token is None:
        return [*checks, DocumentCheck("ledger_inclusion", False, "the kit's token cannot be read")]
    try:
        proof = ProofFile.parse(proof_text.decode("utf-8"))
        log = parse_vkey(trust.ledger_vkey.strip()).verifier()
        checkpoint, _ = open_checkpoint(proof.checkpoint, log)
    except (LedgerError, UnicodeDecodeError, ValueError) as exc:
        why = f"the checkpoint is not signed by this TSA's ledger key: {exc}"
        return [*checks, DocumentCheck("ledger_checkpoint", False, why)]
    checks.append(
        DocumentCheck(
            "ledger_checkpoint",
            True,
            f"signed by this TSA's ledger key ({checkpoint.origin}, tree size {checkpoint.size})",
        )
    )
    try:
        leaf = leaf_hash(token.der)
        verify_inclusion(proof.index, checkpoint.size, leaf, list(proof.path), checkpoint.root)
    except (LedgerError, ValueError) as exc:
        why = f"the inclusion proof does not lead from the token to the checkpoint's root: {exc}"
        return [*checks, DocumentCheck("ledger_inclusion", False, why)]
    why = f"the token is entry {proof.index} of the checkpoint's tree of {checkpoint.size}"
    return [*checks, DocumentCheck("ledger_inclusion", True, why)]


def _certificate(
    archive: zipfile.ZipFile, paths: dict[str, Any], tsr: bytes | None, trust: Trust
) -> list[DocumentCheck]:
    name = paths.get("certificate")
    if not isinstance(name, str) or name not in archive.namelist():
        return [
            DocumentCheck("certificate", True, "the kit holds no certificate PDF", skipped=True)
        ]
    pdf = _read(archive, name, 16 << 20)
    if pdf is None or not pdf.startswith(b"%PDF-"):
        return [DocumentCheck("certificate", False, f"{name} is not a readable PDF")]
    found = check_certificate(pdf, trust)
    failed = [c for c in found.checks if not c.passed]
    if failed:
        why = f"{name}: " + "; ".join(f"{c.name}: {c.reason}" for c in failed)
        return [DocumentCheck("certificate", False, why)]
    if found.token != tsr:
        return [DocumentCheck("certificate", False, f"{name} carries another token than the kit's")]
    return [
        DocumentCheck(
            "certificate",
            True,
            f"{name} is intact, signed and time-stamped, and carries the kit's token",
        )
    ]


def _compared(
    archive: zipfile.ZipFile,
    item: dict[str, Any],
    paths: dict[str, Any],
    token: DocumentToken | None,
) -> tuple[str | None, str, DocumentCheck]:
    """The digest the token must certify, where it comes from, and the original's check."""
    algorithm = token.facts.algorithm if token is not None else None
    original = paths.get("original")
    if isinstance(original, str) and original in archive.namelist():
        try:
            _, digest = _digest(archive, original, algorithm)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
            return (
                None,
                "",
                DocumentCheck("original", False, f"{original} is damaged in the archive"),
            )
        if digest is None:
            why = f"the token's hash algorithm {algorithm} is not one this page computes"
            return None, "", DocumentCheck("original", False, why)
        size = archive.getinfo(original).file_size
        why = f"the kit holds the original ({size} bytes): the token is compared with it"
        return digest.hex(), f"the kit's original {original}", DocumentCheck("original", True, why)
    imprint = item.get("imprint") if isinstance(item.get("imprint"), dict) else {}
    recorded = str((imprint or {}).get("digest") or "")
    if not re.fullmatch(r"[0-9a-fA-F]{2,256}", recorded):
        return (
            None,
            "",
            DocumentCheck("original", False, "no original and no digest in the manifest"),
        )
    why = (
        f"the kit holds no original (storage: {item.get('storage')}): the token is compared "
        "with the digest the manifest records"
    )
    return (
        recorded.lower(),
        "the manifest's digest",
        DocumentCheck("original", True, why, skipped=True),
    )
