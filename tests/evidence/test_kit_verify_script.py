"""The kit checks itself with nothing of this project (issue 19 item 4): kits downloaded
from a real `tsa serve` (a stored original and a hash-only deposit) are unpacked in an
empty folder and checked by the kit's own `verify_kit.py`, run by an interpreter that
cannot reach this repository (Debian's /usr/bin/python3 with its own `cryptography`,
isolated with -I, in the kit's folder; else the venv's interpreter without its site
hooks, so not this project's editable install) and openssl. The untouched kits pass;
a changed byte of the token, the inclusion proof, the original or the checkpoint's
signature fails with exit 2 and names the failing check, even when the tamperer also
rewrote manifest.json to match."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cryptography
import pytest

from tests.support.tsa import Hsm, TsaServer
from tests.web.test_evidence_http import FORM, new_org, sha
from tsa_server.evidence import client
from tsa_server.evidence.kit_files import verify_script

CONTENT = b"an original design, stored with the TSA\n" * 500
SAFE_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
SYSTEM_PYTHON = Path("/usr/bin/python3")


def independent_python() -> list[str]:
    """An interpreter that has `cryptography` but cannot import this project."""
    probe = [str(SYSTEM_PYTHON), "-I", "-c", "import cryptography, tsa_server"]
    if SYSTEM_PYTHON.exists():
        run = subprocess.run(probe, capture_output=True, text=True, cwd="/", timeout=30)
        if "No module named 'tsa_server'" in run.stderr:
            return [str(SYSTEM_PYTHON), "-I"]
    site = str(Path(cryptography.__file__).parent.parent)  # no .pth: no editable install
    runner = (
        f"import sys, runpy; sys.path.append({site!r}); sys.argv = ['verify_kit.py']; "
        "runpy.run_path('verify_kit.py', run_name='__main__')"
    )
    return [sys.executable, "-I", "-S", "-c", runner]


PYTHON = independent_python()


@pytest.fixture(scope="module")
def kits(tmp_path_factory, hsm: Hsm, session_ntp) -> Iterator[dict[str, bytes]]:
    root = tmp_path_factory.mktemp("kitserver")
    evidence = {"path": str(root / "evidence.sqlite"), "blobs": str(root / "blobs")}
    server = TsaServer(root / "s", hsm, session_ntp.address, evidence=evidence).start()
    try:
        api = new_org(server, "Kit recipients", units=10)
        status, body = client.upload(
            server.url,
            api.key,
            {**FORM, "items": [{"file_name": "设计稿 final.png"}]},
            [("f.png", [CONTENT])],
        )
        assert status == 201, body
        stored = body["items"][0]["id"]
        status, _, body = api.deposit(sha(b"kept by the owner"), file_name="x.psd", size=17)
        assert status == 201, body
        hash_only = body["items"][0]["id"]
        found = {}
        for name, item_id in (("stored", stored), ("hash_only", hash_only)):
            status, _, kit = api.call("GET", f"/api/v1/items/{item_id}/kit.zip", raw=True)
            assert status == 200, kit[:300]
            found[name] = kit
        yield found
    finally:
        server.stop()


def unpack(kit: bytes, where: Path) -> dict:
    where.mkdir()
    with zipfile.ZipFile(io.BytesIO(kit)) as z:
        assert all(SAFE_MEMBER.fullmatch(n) for n in z.namelist()), z.namelist()
        z.extractall(where)
    return json.loads((where / "manifest.json").read_text())


def verify(where: Path) -> tuple[int, str]:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    run = subprocess.run(
        [*PYTHON, "verify_kit.py"] if PYTHON[-1] == "-I" else PYTHON,
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run.returncode, run.stdout + run.stderr


def rehash(where: Path, manifest: dict, path: str) -> None:
    """What a careful tamperer does: manifest.json made to match the changed file."""
    data = (where / path).read_bytes()
    for f in manifest["files"]:
        if f["path"] == path:
            f["sha256"], f["size"] = hashlib.sha256(data).hexdigest(), len(data)
    (where / "manifest.json").write_text(json.dumps(manifest))


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_script_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(verify_script())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    roots = {name.split(".")[0] for name in imported}
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}, roots
    assert len(verify_script().splitlines()) < 300


@pytest.mark.parametrize("kind", ["stored", "hash_only"])
def test_untouched_kit_verifies_in_an_empty_folder(kits, kind: str, tmp_path: Path) -> None:
    where = tmp_path / "kit"
    manifest = unpack(kits[kind], where)
    assert manifest["format"] == "tsa-evidence-kit/2"
    assert (where / "verify_kit.py").read_bytes() == verify_script()
    code, out = verify(where)
    assert code == 0, out
    assert "[FAIL]" not in out and "RESULT: OK" in out
    (entry,) = manifest["items"]
    for check in ("files", "token", "ledger"):
        assert f"[PASS] {check}" in out, out
    if kind == "stored":
        assert "[PASS] original" in out and "-data original/" in out
        assert entry["file_name"] == "设计稿 final.png"
        assert (
            entry["paths"]["original"]
            == f"{entry['serial']}/original/{entry['digests']['sha256']}.png"
        )
    else:
        assert "-digest " + sha(b"kept by the owner") in out and entry["paths"]["original"] is None
    # what the recipient must compare: printed by the script and the README, with where
    readme = (where / "README.txt").read_text()
    vkey = (where / "ledger.vkey").read_text().strip()
    assert vkey in out and vkey in readme and manifest["ledger"]["vkey"] == vkey
    for cert in manifest["ca_certificates"]:
        assert cert["sha256"] in readme and cert["sha256"] in out
    chain = subprocess.run(
        ["openssl", "x509", "-in", entry["paths"]["ca_chain"], "-noout", "-fingerprint", "-sha256"],
        cwd=where,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert chain.strip().split("=")[1] == manifest["ca_certificates"][0]["sha256"]
    for url in ("/certs", "/policy", "/ledger/tokens/vkey", "/ledger/tokens/checkpoint"):
        assert url in readme
    assert "without trusting" not in readme and "verify_kit.py" in readme


def test_changed_token_fails_even_with_a_matching_manifest(kits, tmp_path: Path) -> None:
    where = tmp_path / "kit"
    manifest = unpack(kits["stored"], where)
    token = manifest["items"][0]["paths"]["token"]
    flip(where / token, -1)  # the last byte of the token's signature
    code, out = verify(where)
    assert code == 2 and "[FAIL] files" in out and "RESULT: FAILED" in out, out
    rehash(where, manifest, token)
    code, out = verify(where)
    assert code == 2 and "[PASS] files" in out, out
    assert "[FAIL] token" in out and "[FAIL] ledger" in out, out


def test_changed_inclusion_proof_fails(kits, tmp_path: Path) -> None:
    where = tmp_path / "kit"
    manifest = unpack(kits["stored"], where)
    path = manifest["items"][0]["paths"]["inclusion_proof"]
    text = (where / path).read_text()
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("index "))
    if len(lines) > index + 1:  # a path hash changed
        first = bytearray(base64.b64decode(lines[index + 1]))
        first[0] ^= 1
        lines[index + 1] = base64.b64encode(bytes(first)).decode()
    else:  # a one-leaf tree has no path: claim another index
        lines[index] = "index 1"
    (where / path).write_text("\n".join(lines) + "\n\n" + note)
    rehash(where, manifest, path)
    code, out = verify(where)
    assert code == 2 and "[PASS] token" in out and "[FAIL] ledger" in out, out


def test_changed_original_fails(kits, tmp_path: Path) -> None:
    where = tmp_path / "kit"
    manifest = unpack(kits["stored"], where)
    original = manifest["items"][0]["paths"]["original"]
    flip(where / original, 0)
    rehash(where, manifest, original)
    code, out = verify(where)
    assert code == 2 and "[FAIL] original" in out and "[FAIL] token" in out, out
    assert "[PASS] ledger" in out, out


def test_changed_checkpoint_signature_fails(kits, tmp_path: Path) -> None:
    where = tmp_path / "kit"
    manifest = unpack(kits["hash_only"], where)
    path = manifest["items"][0]["paths"]["inclusion_proof"]
    name = (where / "ledger.vkey").read_text().split("+")[0]
    lines = (where / path).read_text().split("\n")
    (at,) = [i for i, line in enumerate(lines) if line.startswith(f"\u2014 {name} ")]
    prefix, blob = lines[at].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1  # inside the Ed25519 signature, after the 4-byte key id
    lines[at] = f"{prefix} {base64.b64encode(bytes(raw)).decode()}"
    (where / path).write_text("\n".join(lines))
    rehash(where, manifest, path)
    code, out = verify(where)
    assert code == 2 and "[PASS] token" in out, out
    assert re.search(r"\[FAIL\] ledger: .*signature", out), out
