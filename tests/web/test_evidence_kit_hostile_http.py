"""Evidence kits made from hostile file names (issue 13, item 14), end to end: originals
uploaded to a real `tsa serve` under names that are shell code or 100 CJK characters,
their kits downloaded, extracted with Debian's `unzip`, and every verify command the
manifest documents run with bash, as a court's expert would: nothing but the
verification happens, and it passes."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support.tsa import TsaServer
from tests.web.test_evidence_http import FORM, new_org, sha
from tsa_server.evidence import client

HOSTILE = (
    "report'; touch KIT_PWNED; echo '.pdf",
    "$(touch KIT_PWNED).pdf",
    "`touch KIT_PWNED`.txt",
    "-rf; touch KIT_PWNED",
    "it's mine && touch KIT_PWNED #.png",
)
CJK = "星" * 100 + ".pdf"  # 100 characters + extension: 304 bytes of UTF-8


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return make_server(
        evidence={"path": str(tmp_path / "evidence.sqlite"), "blobs": str(tmp_path / "blobs")}
    ).start()


def kit_of(api, item_id: str) -> bytes:
    status, _, kit = api.call("GET", f"/api/v1/items/{item_id}/kit.zip", raw=True)
    assert status == 200, kit[:300]
    return kit


@pytest.mark.skipif(shutil.which("unzip") is None, reason="needs Debian's unzip")
def test_hostile_names_never_run_and_the_kit_still_verifies(
    server: TsaServer, tmp_path: Path
) -> None:
    api = new_org(server, "Kit recipients", units=len(HOSTILE) + 1)
    files = [(name, [f"original number {i}\n".encode() * 50]) for i, name in enumerate(HOSTILE)]
    files.append((CJK, [b"a CJK-named original\n" * 50]))
    # the names as metadata (a multipart filename parameter cannot carry all of them)
    metadata = {**FORM, "items": [{"file_name": name} for name, _ in files]}
    parts = [(f"f{i}.bin", chunks) for i, (_, chunks) in enumerate(files)]
    status, body = client.upload(server.url, api.key, metadata, parts)
    assert status == 201, body
    names = [item["file_name"] for item in body["items"]]
    assert names == [n for n, _ in files]  # kept as the depositor gave them: data

    for item, (name, chunks) in zip(body["items"], files, strict=True):
        where = tmp_path / "court" / item["id"]
        where.mkdir(parents=True)
        (where / "kit.zip").write_bytes(kit_of(api, item["id"]))
        unzipped = subprocess.run(
            ["unzip", "-q", "kit.zip"], cwd=where, capture_output=True, text=True, timeout=60
        )
        assert unzipped.returncode == 0, unzipped.stdout + unzipped.stderr
        manifest = json.loads((where / "manifest.json").read_text())
        (entry,) = manifest["items"]
        assert entry["file_name"] == name and entry["original_included"] is True
        folder = where / entry["serial"]
        (member,) = [p for p in entry["files"] if "/original/" in p]
        original = where / member
        assert original.read_bytes() == b"".join(chunks)
        assert len(original.name.encode()) <= 255

        outputs = []
        for command in entry["verify"]:
            run = subprocess.run(
                ["bash", "-c", command], cwd=folder, capture_output=True, text=True, timeout=60
            )
            outputs.append(run.stdout + run.stderr)
            planted = list(tmp_path.rglob("KIT_PWNED"))
            assert not planted, (name, command, planted)
            assert run.returncode == 0, (command, run.stdout, run.stderr)
        assert outputs[0].split()[0] == item["sha256"] == sha(b"".join(chunks))
        assert "Verification: OK" in outputs[2], outputs[2]
        sums = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=where)
        assert sums.returncode == 0
        planted = list(tmp_path.rglob("KIT_PWNED"))
        assert not planted and not Path("KIT_PWNED").exists(), (name, planted)
        assert entry["original_file"] == f"original/{item['sha256']}" + (
            Path(name).suffix if Path(name).suffix in (".pdf", ".txt", ".png") else ""
        )  # named by digest; the deposited name stays data


def test_long_cjk_name_extracts_with_python_zipfile(server: TsaServer, tmp_path: Path) -> None:
    """Python's zipfile writing to the real filesystem: every member name fits."""
    api = new_org(server, "CJK", units=1)
    status, body = client.upload(server.url, api.key, FORM, [(CJK, [b"cjk original"])])
    assert status == 201, body
    with zipfile.ZipFile(io.BytesIO(kit_of(api, body["items"][0]["id"]))) as z:
        assert all(len(part.encode()) <= 255 for n in z.namelist() for part in n.split("/"))
        z.extractall(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["items"][0]["file_name"] == CJK
