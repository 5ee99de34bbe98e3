"""`tsa restore` of a backup behind what the installation published: refused (and
nothing changed) without --accept-loss, and while the server runs; with it, restored,
the lost index ranges recorded in the operations log, the server starts on it, audits
clean, and never issues again a serial of a lost token. Old files copied back by hand
(no `tsa restore`) are still refused by the rollback tripwire."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.backup.helpers import (
    epoch_of,
    issue,
    ops_events,
    published_size,
    serials,
    tsa,
    wait_published,
)


def test_restore_behind_the_published_checkpoint(make_server, tmp_path: Path) -> None:
    live = make_server().start()
    kept = [issue(live, b"kept %d" % i) for i in range(5)]
    dest = tmp_path / "backups"
    assert tsa(live, "backup", str(dest)).returncode == 0
    snapshot = (dest / "latest").resolve()
    # A restart between the backup and the loss: the lost tokens carry a newer epoch.
    live.stop()
    live.start()
    lost = [issue(live, b"lost %d" % i) for i in range(10)]
    size = len(serials(live.ledger_path))
    wait_published(live, size)

    running = tsa(live, "restore", str(snapshot))
    assert running.returncode == 1 and "server is running" in running.stderr
    live.stop()

    # Old files copied back by hand, without `tsa restore`: the server refuses them.
    by_hand = make_server()
    shutil.copytree(live.workdir / "var", by_hand.workdir / "var")
    shutil.copy(snapshot / "tokens.sqlite", by_hand.ledger_path)
    shutil.copy(live.workdir / "ops.sqlite", by_hand.workdir / "ops.sqlite")
    (by_hand.workdir / "var" / "tsa.pid").unlink(missing_ok=True)
    try:
        by_hand.start(timeout=10)
        raise AssertionError("a rolled-back ledger was served")
    except RuntimeError as exc:
        assert "rolled back" in str(exc)

    refused = tsa(live, "restore", str(dest))
    assert refused.returncode == 1, refused.stderr
    assert f"published checkpoint {published_size(live)}" in refused.stderr
    assert f"entries {size - len(lost)}..{size - 1}" in refused.stderr
    assert "--accept-loss" in refused.stderr and "Nothing was changed" in refused.stderr
    assert len(serials(live.ledger_path)) == size

    accepted = tsa(live, "restore", str(dest), "--accept-loss")
    assert accepted.returncode == 0, accepted.stderr
    assert serials(live.ledger_path)[: len(kept)] == kept
    assert len(serials(live.ledger_path)) == size - len(lost)
    event = ops_events(live.workdir / "ops.sqlite")[-1]
    assert event["kind"] == "restore" and event["accepted_loss"] is True
    tokens_lost = event["lost"]["tokens"]
    assert (tokens_lost["from_index"], tokens_lost["to_index"]) == (size - len(lost), size - 1)
    assert tokens_lost["last_published_checkpoint"] == size
    assert size in tokens_lost["published_in_checkpoints"]
    assert event["lost"]["ops"]["entries"] > 0  # the start-up and checkpoint events
    aside = [Path(p) for p in event["set_aside"]]
    assert any(p.name.startswith("ledger.sqlite.pre-restore-") for p in aside)
    kept_aside = next(p for p in aside if p.name.startswith("ledger.sqlite.pre-restore-"))
    conn = sqlite3.connect(kept_aside)
    assert conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == size
    conn.close()

    live.start()  # the tripwire accepts the restore the operator accepted
    after = [issue(live, b"after %d" % i) for i in range(10)]
    assert not set(after) & set(lost + kept)
    assert min(epoch_of(s) for s in after) > max(epoch_of(s) for s in lost)
    wait_published(live, len(serials(live.ledger_path)))
    live.stop()
    audited = tsa(live, "audit", str(live.ledger_path), "--quiet")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    ops_audit = tsa(live, "audit", str(live.workdir / "ops.sqlite"), "--quiet")
    assert ops_audit.returncode == 0, ops_audit.stdout + ops_audit.stderr
