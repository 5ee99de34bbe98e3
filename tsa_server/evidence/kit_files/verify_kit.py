#!/usr/bin/env python3
"""Check an evidence kit offline, independently of the software that made it.

    python3 verify_kit.py [KIT_FOLDER]      (default: the folder holding this script)

Uses only Python's standard library, the `cryptography` package (Ed25519) and the
`openssl` command. For every item it checks:
  files   every file has the SHA-256 and size manifest.json lists;
  token   `openssl ts -verify` of the .tsr with the kit's CA chain, against the original
          (or, when the original is not in the kit, against the certified digest);
  ledger  the token's leaf hash SHA-256(0x00 || token DER), folded with the inclusion
          path of inclusion-proof.tlog (RFC 6962 / RFC 9162 2.1.3.2), gives the root of
          the checkpoint, and the checkpoint is a C2SP signed note signed by the key in
          ledger.vkey (Ed25519 over the note text).
Exit status: 0 every check passed, 2 a check failed, 1 a check could not be run.
These checks prove the files agree with each other and with the CA and the ledger key
shipped in the kit; compare those two with an independent source (see README.txt).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "tsa-evidence-kit/2"
SAFE_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
EM_DASH = "\u2014 "
verdicts: list[bool | None] = []


class KitCheckFailed(Exception):
    """A check failed; the message says why."""


def report(check: str, ok: bool | None, detail: str) -> None:
    verdicts.append(ok)
    label = {True: "PASS", False: "FAIL", None: "NOT RUN"}[ok]
    print(f"[{label}] {check}: {detail}")


def b64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def der_element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at `pos`."""
    if pos + 2 > len(data):
        raise KitCheckFailed("truncated DER")
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 4 or pos + n > len(data):
            raise KitCheckFailed("bad DER length")
        length, pos = int.from_bytes(data[pos : pos + n], "big"), pos + n
    if pos + length > len(data):
        raise KitCheckFailed("truncated DER")
    return tag, pos, pos + length


def token_der(tsr: bytes) -> bytes:
    """The TimeStampToken (CMS ContentInfo) of a TimeStampResp, or the file when it is
    the bare token: the ledger's entry is exactly these bytes (docs/spec/ledger.md L-02)."""
    tag, start, end = der_element(tsr, 0)
    if tag != 0x30 or end != len(tsr):
        raise KitCheckFailed("the .tsr is not one DER SEQUENCE")
    first_tag, _, first_end = der_element(tsr, start)
    if first_tag == 0x06:  # contentType OID first: already a ContentInfo
        return tsr
    if first_end >= end:
        raise KitCheckFailed("the .tsr carries no token (status only)")
    tag, _, token_end = der_element(tsr, first_end)
    if tag != 0x30:
        raise KitCheckFailed("the .tsr's token is not a SEQUENCE")
    return tsr[first_end:token_end]


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root that `path` proves for leaf `index` of `size`."""
    if index >= size:
        raise KitCheckFailed(f"index {index} is not below the checkpoint's size {size}")
    inner = (index ^ (size - 1)).bit_length()
    if len(path) != inner + bin(index >> inner).count("1"):
        raise KitCheckFailed(f"the inclusion path has {len(path)} hashes, not the expected length")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise KitCheckFailed("the inclusion path is too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise KitCheckFailed("the inclusion path is too short")
    return r


def parse_vkey(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """`<name>+<key id, 8 hex>+base64(0x01 || Ed25519 public key)`, its key id checked."""
    name, key_id, blob = vkey.strip().split("+", 2)
    raw = b64(blob)
    if raw[:1] != b"\x01" or len(raw) != 33:
        raise KitCheckFailed("ledger.vkey is not an Ed25519 note key (type 0x01)")
    kid = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if kid.hex() != key_id:
        raise KitCheckFailed("ledger.vkey's key id does not match its key")
    return name, kid, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Verify a C2SP signed note with the log key; (origin, size, root) of its body."""
    name, kid, key = parse_vkey(vkey)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise KitCheckFailed("the checkpoint is not a signed note")
    body, verified = note[: split + 1], 0
    for line in note[split + 2 : -1].split("\n"):
        if not line.startswith(EM_DASH) or line.count(" ") != 2:
            raise KitCheckFailed(f"malformed signature line {line!r}")
        signer, blob = line[len(EM_DASH) :].split(" ")
        raw = b64(blob)
        if signer != name or raw[:4] != kid:
            continue  # another key (a witness, or a "grease" line): not ours to judge
        try:
            key.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise KitCheckFailed(f"the checkpoint's signature by {name} does not verify") from None
        verified += 1
    if verified != 1:
        raise KitCheckFailed(f"the checkpoint has {verified} signatures by {name}, not one")
    lines = body.split("\n")
    origin, size, root = lines[0], lines[1], b64(lines[2])
    if origin != name or not size.isdigit() or len(root) != 32:
        raise KitCheckFailed("the checkpoint's body is not origin, size, root of this log")
    return origin, int(size), root


def fingerprints(pem: Path) -> list[str]:
    """`subject: SHA-256 fingerprint` of every certificate in a PEM file, as openssl
    prints it (`openssl x509 -noout -fingerprint -sha256`)."""
    found = []
    for block in re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END", pem.read_text(), re.S):
        der = base64.b64decode("".join(block.split()))
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        found.append(f"{subject}: " + hashlib.sha256(der).digest().hex(":").upper())
    return found


def check_ledger(kit: Path, tsr: bytes, proof_path: Path, origin: str) -> str:
    head, _, note = proof_path.read_text("utf-8").partition("\n\n")
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise KitCheckFailed("inclusion-proof.tlog is not a c2sp.org/tlog-proof@v1 file")
    rest = lines[2:] if lines[1].startswith("extra ") else lines[1:]
    if not rest[0].startswith("index ") or not rest[0][6:].isdigit():
        raise KitCheckFailed("inclusion-proof.tlog has no index line")
    index, path = int(rest[0][6:]), [b64(line) for line in rest[1:]]
    log, size, root = open_checkpoint(note, (kit / "ledger.vkey").read_text("ascii"))
    if origin and log != origin:
        raise KitCheckFailed(f"the checkpoint is of log {log}, not {origin}")
    leaf = hashlib.sha256(b"\x00" + token_der(tsr)).digest()
    if root_from_path(index, size, leaf, path) != root:
        raise KitCheckFailed(
            f"the token is not entry {index} of the checkpointed tree of size {size}"
        )
    return f"the token is entry {index} of {log}, in the signed checkpoint of size {size}"


def openssl_token(folder: Path, tsr: str, ca: str, original: str | None, digest: str) -> None:
    data = ["-data", original] if original else ["-digest", digest]
    command = ["openssl", "ts", "-verify", "-in", tsr, "-CAfile", ca, *data]
    shown = f"(cd {folder} && {' '.join(command)})"
    if shutil.which("openssl") is None:
        report("token", None, f"openssl is not installed; run by hand: {shown}")
        return
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)
    ok = run.returncode == 0 and "Verification: OK" in run.stdout
    report("token", ok, f"{shown}: " + (run.stdout + run.stderr).strip().split("\n")[0])


def check_item(kit: Path, entry: dict[str, object], origin: str) -> None:
    serial, paths = str(entry["serial"]), entry["paths"]
    digests = entry["digests"]
    assert isinstance(paths, dict) and isinstance(digests, dict)
    print(f"-- item {entry['item_id']}, token serial {serial}")
    folder = kit / str(paths["folder"])
    tsr_path = kit / str(paths["token"])
    tsr = tsr_path.read_bytes()
    original = paths.get("original")
    if original:
        data = (kit / original).read_bytes()
        same = hashlib.sha256(data).hexdigest() == digests["sha256"]
        report("original", same, f"{original}: SHA-256 {'=' if same else '!='} certified digest")
    else:  # the token is checked against the certified digest its imprint holds
        print(
            "   the original is not in this kit: compare `sha256sum YOUR_COPY` with "
            f"{digests['sha256']}"
        )
    digest = next((d for d in digests.values() if bytes.fromhex(d) in tsr), digests["sha256"])
    relative = (str(paths["token"]), str(paths["ca_chain"]), original)
    names = [str(Path(p).relative_to(str(paths["folder"]))) if p else None for p in relative]
    openssl_token(folder, str(names[0]), str(names[1]), names[2], str(digest))
    try:
        report("ledger", True, check_ledger(kit, tsr, kit / str(paths["inclusion_proof"]), origin))
    except (KitCheckFailed, ValueError, KeyError, IndexError, UnicodeError) as exc:
        report("ledger", False, str(exc) or type(exc).__name__)


def check_files(kit: Path, manifest: dict[str, object]) -> None:
    files = manifest["files"]
    assert isinstance(files, list)
    bad = []
    for f in files:
        path = str(f["path"])
        if not SAFE_PATH.fullmatch(path) or ".." in path.split("/"):
            bad.append(f"{path!r}: not a safe name")
        elif not (kit / path).is_file():
            bad.append(f"{path}: missing")
        else:
            data = (kit / path).read_bytes()
            if hashlib.sha256(data).hexdigest() != f["sha256"] or len(data) != f["size"]:
                bad.append(f"{path}: SHA-256 or size differs from manifest.json")
    report("files", not bad, "; ".join(bad) or f"{len(files)} files match manifest.json")


def main(argv: list[str]) -> int:
    kit = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent)
    manifest = json.loads((kit / "manifest.json").read_text("utf-8"))
    if manifest.get("format") != FORMAT:
        report("format", False, f"{manifest.get('format')!r} is not {FORMAT}")
        return 2
    check_files(kit, manifest)
    ledger = manifest.get("ledger") or {}
    chains = set()
    for entry in manifest["items"]:
        try:
            chains.add(kit / entry["paths"]["ca_chain"])
            check_item(kit, entry, str(ledger.get("origin", "")))
        except (OSError, ValueError, KeyError, AssertionError, KitCheckFailed) as exc:
            report("item", False, f"{type(exc).__name__}: {exc}")
    print("\nThese checks are only as good as the CA and ledger key shipped in this kit.")
    print("Compare them with an independent source (README.txt says where):")
    print(f"  ledger key (ledger.vkey): {(kit / 'ledger.vkey').read_text('ascii').strip()}")
    for line in sorted({f for chain in chains if chain.is_file() for f in fingerprints(chain)}):
        print(f"  certificate {line}")
    if False in verdicts:
        print("RESULT: FAILED")
        return 2
    print("RESULT: " + ("INCOMPLETE (a check could not run)" if None in verdicts else "OK"))
    return 1 if None in verdicts else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
