"""Events the command-line tools leave for the server (tsa_server/issuance/ops_inbox.py):
recorded in the operations log by a running server, or at the next start, oldest first,
each once; a file planted by someone else or malformed is refused and never recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ledger.store.sqlite import SqliteStore
from tests.issuance.test_opslog import events, wait_for
from tsa_server.issuance import ops_inbox
from tsa_server.issuance.opslog import OpsLog


@pytest.fixture
def ops(tmp_path: Path):
    store = SqliteStore(tmp_path / "ops.sqlite")
    yield OpsLog(store)
    store.close()


def recorded(ops: OpsLog) -> list[dict]:
    return [json.loads(e.token) for e in ops.store.entries(0, ops.store.size())]


def test_events_are_recorded_oldest_first_once(tmp_path: Path, ops: OpsLog) -> None:
    inbox = tmp_path / "inbox"
    first = ops_inbox.post(inbox, "key_generated", label="tsa-2027", type="ec-p256")
    second = ops_inbox.post(inbox, "key_activation_scheduled", label="tsa-2027")
    assert oct(inbox.stat().st_mode & 0o777) == "0o700"
    assert ops_inbox.drain(inbox, ops) == 2
    assert ops_inbox.drain(inbox, ops) == 0  # deleted once durable
    events_ = recorded(ops)
    assert [e["kind"] for e in events_] == ["key_generated", "key_activation_scheduled"]
    assert [e["inbox_id"] for e in events_] == [first, second]
    assert events_[0]["label"] == "tsa-2027" and events_[0]["posted_ms"] <= events_[0]["time_ms"]
    assert list(inbox.iterdir()) == []


def test_bad_events_are_refused_at_posting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="event kind"):
        ops_inbox.post(tmp_path, "Bad Kind")
    with pytest.raises(ValueError, match="reserved"):
        ops_inbox.post(tmp_path, "x", time_ms=1)
    with pytest.raises(ValueError, match="at most"):
        ops_inbox.post(tmp_path, "x", blob="a" * ops_inbox.MAX_EVENT_BYTES)
    assert list(tmp_path.iterdir()) == []


def test_planted_or_malformed_files_are_set_aside(tmp_path: Path, ops: OpsLog) -> None:
    inbox = tmp_path / "inbox"
    ops_inbox.post(inbox, "good")
    writable = inbox / "0000000000001-aaaaaaaa.json"
    writable.write_text(json.dumps({"kind": "forged", "posted_ms": 1, "details": {}}))
    writable.chmod(0o666)  # another account could have written it
    (inbox / "0000000000002-bbbbbbbb.json").write_text("{not json")
    (inbox / "0000000000003-cccccccc.json").write_text(
        json.dumps({"kind": "x", "posted_ms": 1, "details": {"kind": "start"}})
    )
    assert ops_inbox.drain(inbox, ops) == 1
    assert [e["kind"] for e in recorded(ops)] == ["good"]
    assert sorted(p.suffix for p in inbox.iterdir()) == [".refused"] * 3


def test_a_running_server_records_what_a_tool_posts(make_server) -> None:
    server = make_server().start()
    inbox = server.workdir / "ops-inbox"
    inbox_id = ops_inbox.post(inbox, "incident_published", report="inc-1")
    wait_for(lambda: any(e.get("inbox_id") == inbox_id for e in events(server)))
    assert not any(inbox.glob("*.json"))
    server.stop()
    later = ops_inbox.post(inbox, "key_activated", label="next")  # while it is stopped
    server.start()
    kinds = [(e["kind"], e.get("inbox_id")) for e in events(server)]
    last_start = max(i for i, (kind, _) in enumerate(kinds) if kind == "start")
    assert kinds[last_start + 1] == ("key_activated", later)  # recorded at the start
    assert os.listdir(inbox) == []
