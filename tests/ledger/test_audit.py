"""`tsa-ledger audit` on a ledger made by the real server, and on tampered copies of it:
each tampering is found and named by its index; exit codes 0 / 1 / 2."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.audit import audit
from ledger.merkle import root_of
from ledger.store.sqlite import SqliteReader
from tests.support.queries import make_request
from tests.support.tsa import TsaServer

AUDIT = [str(Path(sys.executable).with_name("tsa-ledger")), "audit", "--quiet"]
TRIGGERS = ("entries_no_update", "entries_no_delete", "entries_contiguous", "entries_monotone")


@pytest.fixture
def ledger_copy(tsa: TsaServer, tmp_path) -> Path:
    """A consistent copy (SQLite backup API) of the live server's ledger, >= 20 entries."""
    for i in range(20):
        tsa.post_query(make_request(b"audit %d" % i))
    copy = tmp_path / "copy.sqlite"
    src, dst = sqlite3.connect(tsa.ledger_path), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    for trigger in TRIGGERS:  # the tamperer's first move
        dst.execute(f"DROP TRIGGER {trigger}")
    dst.commit()
    dst.close()
    return copy


def run_audit(path: Path):
    reader = SqliteReader(path)
    try:
        return audit(reader.entries(), checkpoints=reader.checkpoints())
    finally:
        reader.close()


def tamper(path: Path, *statements: tuple) -> None:
    conn = sqlite3.connect(path)
    for sql, *args in statements:
        conn.execute(sql, args)
    conn.commit()
    conn.close()


def test_untampered_ledger_verifies(ledger_copy) -> None:
    report = run_audit(ledger_copy)
    assert report.ok, report.failures
    reader = SqliteReader(ledger_copy)
    leaves = [e.leaf_hash for e in reader.entries()]
    reader.close()
    assert report.size == len(leaves) >= 20
    assert report.root == root_of(leaves)
    result = subprocess.run([*AUDIT, str(ledger_copy)], capture_output=True, text=True)
    assert result.returncode == 0 and "\nOK:" in "\n" + result.stdout
    # no --vkey and no server to ask: said, with where the key is, not hidden
    assert "checkpoint signatures not checked: give --vkey" in result.stdout
    assert "/ledger/tokens/vkey" in result.stdout and " 0 signatures checked" in result.stdout


def test_one_changed_byte_in_a_token(ledger_copy) -> None:
    reader = SqliteReader(ledger_copy)
    token = reader.entry(7).token
    reader.close()
    changed = token[:-10] + bytes([token[-10] ^ 1]) + token[-9:]
    tamper(ledger_copy, ("UPDATE entries SET token = ? WHERE idx = 7", changed))
    failures = run_audit(ledger_copy).failures
    assert failures[0].index == 7 and failures[0].check == "leaf_hash"
    result = subprocess.run([*AUDIT, str(ledger_copy)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "FAIL index 7 [leaf_hash]" in result.stdout


def test_a_token_stored_as_text_is_a_failed_check(ledger_copy) -> None:
    # The same bytes with another storage type, broken UTF-8 included: a finding named
    # by its index, not the driver's decoding error.
    tamper(ledger_copy, ("UPDATE entries SET token = CAST(token AS TEXT) WHERE idx = 5",))
    result = subprocess.run([*AUDIT, str(ledger_copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr  # same bytes: intact
    tamper(ledger_copy, ("UPDATE entries SET token = CAST(x'ff00' AS TEXT) WHERE idx = 5",))
    result = subprocess.run([*AUDIT, str(ledger_copy)], capture_output=True, text=True)
    assert result.returncode == 2 and "FAIL index 5 [leaf_hash]" in result.stdout, result
    assert "decode" not in result.stdout + result.stderr


def test_rehashed_token_still_breaks_the_chain(ledger_copy) -> None:
    from ledger.hashing import leaf_hash

    reader = SqliteReader(ledger_copy)
    other = reader.entry(3).token
    reader.close()
    tamper(
        ledger_copy,
        ("UPDATE entries SET token = ?, leaf_hash = ? WHERE idx = 9", other, leaf_hash(other)),
    )
    failures = run_audit(ledger_copy).failures
    assert (failures[0].index, failures[0].check) == (9, "chain")


def test_dropped_row(ledger_copy) -> None:
    tamper(ledger_copy, ("DELETE FROM entries WHERE idx = 5",))
    failures = run_audit(ledger_copy).failures
    assert (failures[0].index, failures[0].check) == (5, "contiguous")


def test_swapped_rows(ledger_copy) -> None:
    tamper(
        ledger_copy,
        ("UPDATE entries SET idx = -1 WHERE idx = 4",),
        ("UPDATE entries SET idx = 4 WHERE idx = 6",),
        ("UPDATE entries SET idx = 6 WHERE idx = -1",),
    )
    failures = run_audit(ledger_copy).failures
    assert failures and failures[0].index == 4 and failures[0].check == "chain"


def test_duplicate_serial_and_decreasing_gen_time(ledger_copy) -> None:
    reader = SqliteReader(ledger_copy)
    first = reader.entry(2)
    reader.close()
    tamper(
        ledger_copy,
        ("DROP INDEX idx_entries_serial",),
        ("UPDATE entries SET serial = ? WHERE idx = 11", format(first.serial, "040x")),
        ("UPDATE entries SET gen_time = 0 WHERE idx = 12",),
    )
    checks = {(f.index, f.check) for f in run_audit(ledger_copy).failures}
    assert (11, "serial") in checks and (12, "gen_time") in checks
    assert (11, "token") in checks and (12, "token") in checks  # rows disagree with tokens


def test_usage_errors_exit_1(tmp_path) -> None:
    missing = subprocess.run([*AUDIT, str(tmp_path / "none.sqlite")], capture_output=True)
    assert missing.returncode in (1, 2) and b"Traceback" not in missing.stderr
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    result = subprocess.run([*AUDIT, str(junk)], capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr


def vkey_of(tsa: TsaServer) -> str:
    return tsa.get("/ledger/tokens/vkey")[2].decode().strip()


def wait_for_checkpoint(tsa: TsaServer, size: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, _, body = tsa.get("/ledger/tokens/checkpoint")
        if status == 200 and int(body.decode().split("\n")[1]) >= size:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint")


def test_checkpoints_and_bindings_verify_with_the_vkey(tsa: TsaServer, ledger_copy) -> None:
    reader = SqliteReader(ledger_copy)
    checkpoints = reader.checkpoints()
    assert checkpoints
    result = subprocess.run(
        [*AUDIT, "--vkey", vkey_of(tsa), str(ledger_copy)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    assert "WARNING" not in result.stdout
    reader.close()


def test_forged_checkpoint_note_is_found(tsa: TsaServer, ledger_copy) -> None:
    reader = SqliteReader(ledger_copy)
    last = reader.checkpoints()[-1]
    reader.close()
    forged = last.note.replace(last.note.split("\n")[2], "A" * 43 + "=", 1)
    tamper(
        ledger_copy,
        ("DROP TRIGGER checkpoints_no_update",),
        ("UPDATE checkpoints SET note = ? WHERE size = ?", forged, last.size),
    )
    result = subprocess.run(
        [*AUDIT, "--vkey", vkey_of(tsa), str(ledger_copy)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert f"checkpoint {last.size}: signed note rejected" in result.stdout


def test_checkpoint_beyond_the_ledger_means_lost_entries(ledger_copy) -> None:
    from ledger.store.base import SignedCheckpoint

    reader = SqliteReader(ledger_copy)
    size = reader.size()
    report = audit(
        reader.entries(),
        checkpoints=[SignedCheckpoint(size + 5, bytes(32), bytes(32), "x\n5\nAA==\n\n")],
    )
    reader.close()
    assert any("beyond" in f.message for f in report.failures)


def test_verify_token_offline(tsa: TsaServer, tmp_path) -> None:
    from tests.support.queries import parse_response

    body = tsa.post_query(make_request(b"offline proof"))[2]
    token = parse_response(body)["time_stamp_token"]
    tst = token["content"]["encap_content_info"]["content"].parsed
    from ledger.binding import find_binding

    index = find_binding(tst).leaf_index
    wait_for_checkpoint(tsa, index + 1)
    tsr, proof = tmp_path / "t.tsr", tmp_path / "t.tlog-proof"
    tsr.write_bytes(body)
    proof.write_bytes(tsa.get(f"/ledger/tokens/tlog-proof/{index}")[2])
    tool = [AUDIT[0], "verify-token", str(tsr), str(proof), "--vkey", vkey_of(tsa)]
    ok = subprocess.run(tool, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith(f"OK: entry {index}")
    other = tmp_path / "other.tsr"
    other.write_bytes(tsa.post_query(make_request(b"another"))[2])
    bad = subprocess.run(
        [AUDIT[0], "verify-token", str(other), str(proof), "--vkey", vkey_of(tsa)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stdout.startswith("INVALID")


def mirror(tsa: TsaServer, root: Path) -> int:
    """Copy the published log (checkpoint, chain head, tiles, bundles) into a directory."""
    from ledger.tiles import TileId

    note = tsa.get("/ledger/tokens/checkpoint")[2]
    size = int(note.decode().split("\n")[1])
    files = {"checkpoint": note}
    for archived in tsa.get("/ledger/tokens/checkpoints/")[2].decode().split():
        files[f"checkpoints/{archived}"] = tsa.get(f"/ledger/tokens/checkpoints/{archived}")[2]
        files[f"chain/{archived}"] = tsa.get(f"/ledger/tokens/chain/{archived}")[2]
    tiles = []
    level = 0
    while (nodes := size >> (8 * level)) > 0:  # every level, beyond 256 entries too
        for n in range((nodes + 255) // 256):
            width = min(256, nodes - n * 256)
            tiles.append(TileId(level, n, width))
            if level == 0:
                tiles.append(TileId(0, n, width, entries=True))
        level += 1
    for tile in tiles:
        status, _, body = tsa.get("/ledger/tokens/" + tile.path)
        assert status == 200, tile.path
        files[tile.path] = body
    for path, body in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(body)
    return size


def test_audit_from_the_url_and_from_a_mirror(tsa: TsaServer, tmp_path) -> None:
    for i in range(5):
        tsa.post_query(make_request(b"mirror %d" % i))
    wait_for_checkpoint(tsa, 1)
    vkey = vkey_of(tsa)
    by_url = subprocess.run(
        [*AUDIT, "--vkey", vkey, "-j", "2", tsa.url + "ledger/tokens/"],
        capture_output=True,
        text=True,
    )
    assert by_url.returncode == 0, by_url.stdout + by_url.stderr
    size = mirror(tsa, tmp_path / "m")
    by_dir = subprocess.run(
        [*AUDIT, "--vkey", vkey, str(tmp_path / "m")], capture_output=True, text=True
    )
    assert by_dir.returncode == 0, by_dir.stdout
    assert f"OK: token log, {size} entries" in by_dir.stdout, by_dir.stdout
    # One byte changed in a mirrored entry bundle: found, at its index.
    bundle = tmp_path / "m" / "tile" / "entries" / "000"
    if not bundle.exists():
        bundle = next((tmp_path / "m" / "tile" / "entries").glob("000*/*"))
    data = bytearray(bundle.read_bytes())
    data[100] ^= 0x01
    bundle.write_bytes(bytes(data))
    bad = subprocess.run(
        [*AUDIT, "--vkey", vkey, str(tmp_path / "m")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "FAIL index 0 [leaf_hash]" in bad.stdout


def test_parallel_audit_reports_the_same(ledger_copy) -> None:
    reader = SqliteReader(ledger_copy)
    serial = reader.entry(3).serial
    reader.close()
    tamper(
        ledger_copy,
        ("DROP INDEX idx_entries_serial",),
        ("UPDATE entries SET serial = ? WHERE idx = 8", format(serial, "040x")),
    )
    one = subprocess.run([*AUDIT, "--json", str(ledger_copy)], capture_output=True, text=True)
    two = subprocess.run(
        [*AUDIT, "--json", "-j", "2", str(ledger_copy)], capture_output=True, text=True
    )
    import json

    first, second = json.loads(one.stdout), json.loads(two.stdout)
    assert first["failures"] == second["failures"] and first["failures"]
    assert first["root"] == second["root"]


def test_tsa_audit_verifies_every_token_against_the_roots(
    tsa: TsaServer, hsm, ledger_copy, tmp_path
) -> None:
    tsa_bin = str(Path(sys.executable).with_name("tsa"))
    chain = ["--tsa-cert", str(hsm.chain_file)]  # certReq=false tokens carry no certificate
    ok = subprocess.run(
        [
            tsa_bin,
            "audit",
            "--quiet",
            "-j",
            "2",
            "--ca",
            str(hsm.ca_file),
            *chain,
            "--vkey",
            vkey_of(tsa),
            str(ledger_copy),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Another CA: every token's chain fails, and each failure names its index.
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Other CA")])
    now = datetime.now(UTC)
    other = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    other_file = tmp_path / "other.pem"
    other_file.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    bad = subprocess.run(
        [tsa_bin, "audit", "--quiet", "--ca", str(other_file), *chain, str(ledger_copy)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "FAIL index 0 [token] certificate_chain" in bad.stdout


def test_tree_only_audit(ledger_copy) -> None:
    result = subprocess.run(
        [*AUDIT, "--tree-only", str(ledger_copy)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "OK:" in result.stdout


def test_a_stored_tree_node_that_disagrees_is_found(tsa: TsaServer, tmp_path) -> None:
    for i in range(260):
        tsa.post_query(make_request(b"node %d" % i))
    copy = tmp_path / "nodes.sqlite"
    src, dst = sqlite3.connect(tsa.ledger_path), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.execute("DROP TRIGGER nodes_no_update")
    dst.execute("UPDATE nodes SET hash = zeroblob(32) WHERE level = 8 AND idx = 0")
    dst.commit()
    dst.close()
    result = subprocess.run([*AUDIT, "--tree-only", str(copy)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "[tile] stored node (8, 0) differs from the replayed tree" in result.stdout


def test_resume_replays_only_new_entries(tsa: TsaServer, tmp_path) -> None:
    import json

    state = tmp_path / "audit.state"
    first = subprocess.run(
        [*AUDIT, "--json", "--resume", str(state), tsa.url + "ledger/tokens/"],
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    before = json.loads(first.stdout)
    for i in range(300):
        tsa.post_query(make_request(b"resume %d" % i))
    wait_for_checkpoint(tsa, before["size"] + 300)
    again = subprocess.run(
        [*AUDIT, "--json", "--resume", str(state), tsa.url + "ledger/tokens/"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    after = json.loads(again.stdout)
    full = json.loads(
        subprocess.run(
            [*AUDIT, "--json", tsa.url + "ledger/tokens/"], capture_output=True, text=True
        ).stdout
    )
    # Same root and chain head as a full replay, from the new entries alone.
    assert after["size"] == full["size"] and after["root"] == full["root"]
    assert after["chain_head"] == full["chain_head"]
    assert after["bytes"] - before["bytes"] < full["bytes"]
    other = subprocess.run(
        [*AUDIT, "--resume", str(state), str(tsa.ledger_path)], capture_output=True, text=True
    )
    assert other.returncode == 1 and "not " in other.stderr  # a state file of another source


def test_the_audit_finds_what_it_needs(tsa: TsaServer) -> None:
    """The server's own URL stands for every log it lists (its token log and its
    operations log, issue 16), the operations log is recognised by its entries (no
    --not-tokens), the key comes from the server when not given (said), the summary
    counts what was checked, and no progress bar goes to a stderr that is no terminal."""
    for i in range(3):
        tsa.post_query(make_request(b"finds %d" % i))
    wait_for_checkpoint(tsa, 1)
    run = [str(Path(sys.executable).with_name("tsa-ledger")), "audit"]
    by_server = subprocess.run([*run, "-j", "2", tsa.url], capture_output=True, text=True)
    assert by_server.returncode == 0, by_server.stdout + by_server.stderr
    # stderr is a pipe here: no progress bar (tests/cli/test_progress.py: a terminal's)
    assert by_server.stderr == "", by_server.stderr
    lines = by_server.stdout.splitlines()
    assert f"== {tsa.url}ledger/tokens/" in lines and f"== {tsa.url}ledger/ops/" in lines
    summary = next(line for line in lines if line.startswith("OK: token log, "))
    assert any(line.startswith("OK: operations log, ") for line in lines)
    found = re.search(r"(\d+) checkpoints and (\d+) signatures checked", summary)
    assert found and int(found[1]) >= 1 and found[1] == found[2], summary
    assert "the key the log itself publishes" in by_server.stdout
    for source in (tsa.url + "ledger/ops/", str(tsa.workdir / "ops.sqlite")):
        ops = subprocess.run([*run, "--quiet", source], capture_output=True, text=True)
        assert ops.returncode == 0, ops.stdout + ops.stderr
        assert ops.stdout.splitlines()[-1].startswith("OK: operations log, "), ops.stdout
        assert "[token]" not in ops.stdout
    nowhere = subprocess.run(
        [*run, "--quiet", tsa.url + "no/such/prefix/"], capture_output=True, text=True
    )
    assert nowhere.returncode == 1 and "neither a log nor a TSA server" in nowhere.stderr
