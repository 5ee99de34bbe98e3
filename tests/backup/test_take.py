"""`tsa backup` on a real server issuing under load: the snapshot restores into a fresh
installation that starts, audits clean, serves and holds every token acknowledged
before the backup began; a second backup copies no original again; a damaged snapshot
is refused; a PostgreSQL configuration is sent to the documented procedure."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path

from tests.backup.helpers import epoch_of, issue, ops_events, serials, tsa
from tests.support.tsa import TsaServer, write_config
from tsa_server.evidence.blobs import FileBlobStore


def _load(server: TsaServer, stop: threading.Event, acknowledged: list[int]) -> None:
    n = 0
    while not stop.is_set():
        acknowledged.append(issue(server, b"load %d" % n))
        n += 1


def _private(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        assert mode & 0o077 == 0, f"{path} is {mode:o}"


def test_backup_under_load_restores_audits_and_serves(make_server, tmp_path: Path) -> None:
    live = make_server().start()
    blobs = FileBlobStore(live.workdir / "var" / "blobs")
    keys = {blobs.put(b"original %d" % i * 1000).key for i in range(3)}
    before = [issue(live, b"before %d" % i) for i in range(10)]
    stop, acknowledged = threading.Event(), list[int]()
    load = threading.Thread(target=_load, args=(live, stop, acknowledged))
    load.start()
    try:
        dest = tmp_path / "backups"
        done = tsa(live, "backup", str(dest))
    finally:
        stop.set()
        load.join(30)
    assert done.returncode == 0, done.stderr
    assert len(acknowledged) > 0  # the server issued while the backup ran
    snapshot = (dest / "latest").resolve()
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["order"][-1] == "tokens.sqlite"
    assert manifest["blobs"]["copied"] == 3 and set(manifest["blobs"]["keys"]) == keys
    assert manifest["audit"]["tokens"]["ok"] and manifest["audit"]["ops"]["ok"]
    _private(dest)

    again = tsa(live, "backup", str(dest))
    assert again.returncode == 0, again.stderr
    second = json.loads(((dest / "latest").resolve() / "manifest.json").read_text())
    assert second["blobs"]["copied"] == 0 and second["blobs"]["linked"] == 3

    fresh = make_server()
    restored = tsa(fresh, "restore", str(snapshot))
    assert restored.returncode == 0, restored.stderr
    assert set(before) <= set(serials(fresh.ledger_path))
    events = ops_events(fresh.workdir / "ops.sqlite")
    assert events[-1]["kind"] == "restore" and events[-1]["accepted_loss"] is False
    fresh.start()
    serial = issue(fresh, b"after the restore")
    # No live ledger to read the epoch from: the restore skipped 2^32 epochs.
    assert epoch_of(serial) > max(epoch_of(s) for s in before + acknowledged) + (1 << 31)
    fresh.stop()
    audited = tsa(fresh, "audit", str(fresh.ledger_path), "--quiet")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert all(FileBlobStore(fresh.workdir / "var" / "blobs").verify(key) for key in keys)


def test_a_damaged_backup_is_refused(make_server, tmp_path: Path) -> None:
    live = make_server().start()
    issue(live, b"one")
    FileBlobStore(live.workdir / "var" / "blobs").put(b"an original")
    dest = tmp_path / "backups"
    assert tsa(live, "backup", str(dest)).returncode == 0
    live.stop()
    snapshot = (dest / "latest").resolve()
    for name, offset in (("tokens.sqlite", 200), ("blobs", 0)):
        damaged = tmp_path / f"damaged-{name}"
        shutil.copytree(snapshot, damaged, symlinks=True)
        target = damaged / name
        if name == "blobs":
            target = next(p for p in target.rglob("*") if p.is_file())
        os.chmod(target, 0o600)
        data = bytearray(target.read_bytes())
        data[offset] ^= 0xFF
        target.write_bytes(bytes(data))
        fresh = make_server()
        done = tsa(fresh, "restore", str(damaged))
        assert done.returncode == 2, done.stderr
        assert "damaged" in done.stderr and "nothing was changed" in done.stderr
        assert "Traceback" not in done.stderr
        assert not fresh.ledger_path.exists()


def test_postgresql_configuration_is_sent_to_the_documented_procedure(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "tsa.toml", {"database": {"url": "postgresql://db.invalid/tsa"}}
    )
    server = TsaServer.__new__(TsaServer)
    server.workdir, server.config_path = tmp_path, config
    for command in ("backup", "restore"):
        done = tsa(server, command, str(tmp_path / "b"))
        assert done.returncode == 1, done.stderr
        assert "PostgreSQL" in done.stderr and "docs/operations.md" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "b").exists()
    FileBlobStore(tmp_path / "var" / "blobs").put(b"an original")
    # the originals are in the database by default ([evidence] blob_backend = "auto")
    files = tsa(server, "backup", "--files-only", str(tmp_path / "b"))
    assert files.returncode == 0, files.stderr
    assert "stored originals: in the PostgreSQL database" in files.stdout
    manifest = json.loads((tmp_path / "b" / "latest" / "manifest.json").read_text())
    assert manifest["blobs"]["in_database"] and manifest["blobs"]["count"] == 0
    server.config_path = write_config(
        tmp_path / "files.toml",
        {"database": {"url": "postgresql://db.invalid/tsa"}, "evidence": {"blob_backend": "files"}},
    )
    files = tsa(server, "backup", "--files-only", str(tmp_path / "b"))
    assert files.returncode == 0, files.stderr
    manifest = json.loads((tmp_path / "b" / "latest" / "manifest.json").read_text())
    assert manifest["kind"] == "files-only" and manifest["blobs"]["count"] == 1
    assert "tokens.sqlite" not in manifest["files"]
