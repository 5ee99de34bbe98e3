"""The published ledger, read the way an outside auditor would: checkpoint and vkey,
tiles and entry bundles (checked with code written from docs/spec/ledger.md Part B alone, not the
project's ledger package), proofs, tlog-proof files, lookups and LedgerBinding."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time

import pytest
from asn1crypto import cms, tsp  # noqa: F401 - tsp registers TSTInfo with cms
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.support.queries import make_request, parse_response
from tests.support.tsa import TsaServer

pytestmark = pytest.mark.both_backends

PREFIX = "/ledger/tokens/"


# --- an independent reading of C2SP tlog-checkpoint / signed-note / tlog-tiles ---------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 over leaf hashes (not entries)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def open_note(note: str, vkey: str) -> tuple[str, int, bytes]:
    name, key_hash, key_b64 = vkey.strip().split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 1 and len(key) == 33
    key_id = sha256(name.encode() + b"\n\x01" + key[1:])[:4]
    assert key_id.hex() == key_hash
    text, signatures = note.split("\n\n", 1)
    text += "\n"
    good = 0
    for line in signatures.splitlines():
        assert line.startswith("\u2014 ")
        signer, blob_b64 = line[2:].split(" ")
        blob = base64.b64decode(blob_b64)
        if signer == name and blob[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(blob[4:], text.encode())
            good += 1
    assert good == 1
    origin, size, root = text.rstrip("\n").split("\n")
    assert origin == name
    return origin, int(size), base64.b64decode(root)


def tile_path(index: int) -> str:
    digits = f"{index:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + groups[-1:])


def fetch_leaves(server: TsaServer, size: int) -> list[bytes]:
    leaves = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        suffix = "" if width == 256 else f".p/{width}"
        status, _, body = server.get(f"{PREFIX}tile/0/{tile_path(n)}{suffix}")
        assert status == 200 and len(body) == 32 * width
        leaves += [body[i : i + 32] for i in range(0, len(body), 32)]
    return leaves


def fetch_entries(server: TsaServer, size: int) -> list[bytes]:
    entries = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        suffix = "" if width == 256 else f".p/{width}"
        status, _, body = server.get(f"{PREFIX}tile/entries/{tile_path(n)}{suffix}")
        assert status == 200
        while body:
            (length,) = struct.unpack(">H", body[:2])
            entries.append(body[2 : 2 + length])
            body = body[2 + length :]
    return entries


# --- tests -------------------------------------------------------------------------------


def published(server: TsaServer, at_least: int) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, _, body = server.get(PREFIX + "checkpoint")
        if status == 200 and int(body.decode().split("\n")[1]) >= at_least:
            return body.decode()
        time.sleep(0.1)
    raise AssertionError("no checkpoint of the expected size")


@pytest.fixture(scope="module")
def issued(tsa: TsaServer):
    tokens = []
    for i in range(300):  # more than one tile
        reply = parse_response(tsa.post_query(make_request(b"ledger %d" % i))[2])
        tokens.append(reply["time_stamp_token"].dump())
    return tokens


def covered(tokens: list[bytes]) -> int:
    """The tree size that includes every one of these tokens (from their bindings)."""
    from ledger.binding import find_binding

    last = cms.ContentInfo.load(tokens[-1])["content"]["encap_content_info"]["content"].parsed
    return find_binding(last).leaf_index + 1


def test_checkpoint_root_recomputed_from_tiles_and_bundles(tsa: TsaServer, issued) -> None:
    vkey = tsa.get(PREFIX + "vkey")[2].decode()
    note = published(tsa, covered(issued))
    origin, size, root = open_note(note, vkey)
    leaves = fetch_leaves(tsa, size)
    assert mth(leaves) == root
    entries = fetch_entries(tsa, size)
    assert [sha256(b"\x00" + e) for e in entries] == leaves
    assert set(issued) <= set(entries)
    status, headers, _ = tsa.get(f"{PREFIX}tile/0/000")
    assert "immutable" in headers["Cache-Control"]
    assert "max-age=5" in tsa.get(PREFIX + "checkpoint")[1]["Cache-Control"]
    # beyond the published tree, and junk paths
    assert tsa.get(f"{PREFIX}tile/0/{tile_path(size // 256 + 1)}")[0] == 404
    assert tsa.get(f"{PREFIX}tile/0/../../etc")[0] == 404
    assert tsa.get(f"{PREFIX}tile/0/0001")[0] == 404


def test_every_token_carries_its_ledger_binding(tsa: TsaServer, issued) -> None:
    note = published(tsa, covered(issued))
    _, size, _ = open_note(note, tsa.get(PREFIX + "vkey")[2].decode())
    leaves = fetch_leaves(tsa, size)
    entries = fetch_entries(tsa, size)
    from ledger.binding import find_binding

    for index, token in enumerate(entries):
        tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
        binding = find_binding(tst)
        assert binding is not None and binding.leaf_index == index
        assert binding.anchor_size <= index
        if binding.anchor_size:
            assert binding.anchor_root == mth(leaves[: binding.anchor_size])


def test_proofs_and_tlog_proof_files(tsa: TsaServer, issued) -> None:
    from ledger.checkpoint import parse_vkey
    from ledger.proof_file import ProofFile
    from ledger.proofs import verify_consistency, verify_inclusion

    published(tsa, covered(issued))
    verifier = parse_vkey(tsa.get(PREFIX + "vkey")[2].decode().strip()).verifier()
    body = json.loads(tsa.get(PREFIX + "proof/inclusion?index=17")[2])
    proof = [base64.b64decode(h) for h in body["proof"]]
    verify_inclusion(
        17, body["size"], base64.b64decode(body["leaf_hash"]), proof, base64.b64decode(body["root"])
    )
    status, _, text = tsa.get(PREFIX + "tlog-proof/42")
    assert status == 200
    entry = fetch_entries(tsa, 43)[42]
    checkpoint = ProofFile.parse(text.decode()).verify(entry, verifier)
    assert checkpoint.size >= 43
    sizes = [int(s) for s in _archived_sizes(tsa)]
    if len(sizes) >= 2:
        old, new = sizes[0] or sizes[1], sizes[-1]
        body = json.loads(tsa.get(f"{PREFIX}proof/consistency?old={old}&new={new}")[2])
        verify_consistency(
            old,
            new,
            [base64.b64decode(h) for h in body["proof"]],
            base64.b64decode(body["old_root"]),
            base64.b64decode(body["new_root"]),
        )
    assert tsa.get(PREFIX + "proof/inclusion?index=abc")[0] == 400
    assert tsa.get(PREFIX + "tlog-proof/999999999")[0] == 404


def _archived_sizes(tsa: TsaServer) -> list[str]:
    with tsa.ledger() as reader:
        return [str(size) for size in reader.checkpoint_sizes()]


def test_archived_checkpoints_and_chain_heads(tsa: TsaServer, issued) -> None:
    published(tsa, covered(issued))
    for size in _archived_sizes(tsa)[-3:]:
        status, headers, note = tsa.get(f"{PREFIX}checkpoints/{size}")
        assert status == 200 and "immutable" in headers["Cache-Control"]
        assert note.decode().split("\n")[1] == size
        status, _, head = tsa.get(f"{PREFIX}chain/{size}")
        assert status == 200 and len(bytes.fromhex(head.decode().strip())) == 32
    assert tsa.get(f"{PREFIX}chain/7777777")[0] == 404


def test_the_checkpoint_listing_continues_after_a_size(tsa: TsaServer, issued) -> None:
    published(tsa, covered(issued))
    status, headers, body = tsa.get(f"{PREFIX}checkpoints/")
    everything = body.decode().split()
    assert status == 200 and everything == _archived_sizes(tsa)[: len(everything)]
    assert "Link" not in headers  # one page holds them all here
    middle = everything[len(everything) // 2]
    status, _, rest = tsa.get(f"{PREFIX}checkpoints/?after={middle}")
    assert status == 200
    assert rest.decode().split() == everything[everything.index(middle) + 1 :]
    assert tsa.get(f"{PREFIX}checkpoints/?after=-1")[0] == 400


def test_an_audit_source_follows_the_listing_page_after_page() -> None:
    """The client side of CHECKPOINT_PAGE, against the server's paging rule: 2.5 pages."""
    from ledger.sources import TileSource
    from ledger.tiles import CHECKPOINT_PAGE

    archived = list(range(0, 5 * CHECKPOINT_PAGE // 2))
    asked = []

    def fetch(path: str) -> bytes:
        asked.append(path)
        after = int(path.split("after=")[1]) if "after=" in path else -1
        page = [s for s in archived if s > after][:CHECKPOINT_PAGE]
        return "".join(f"{s}\n" for s in page).encode()

    source = TileSource.__new__(TileSource)  # only the listing is read here
    source._fetch = fetch
    assert list(source._archived_sizes()) == archived
    assert len(asked) == 3 and asked[0] == "checkpoints/"


def test_lookups_answer_with_proofs(tsa: TsaServer, issued) -> None:
    published(tsa, covered(issued))
    token = issued[10]
    tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    serial = tst["serial_number"].native
    found = json.loads(tsa.get(f"{PREFIX}lookup/serial/{serial:x}")[2])["matches"]
    assert len(found) == 1 and base64.b64decode(found[0]["token"]) == token
    assert found[0]["tlog_proof"].startswith("c2sp.org/tlog-proof@v1\n")
    imprint = tst["message_imprint"]["hashed_message"].native.hex()
    assert json.loads(tsa.get(f"{PREFIX}lookup/imprint/{imprint}")[2])["matches"]
    leaf = sha256(b"\x00" + token).hex()
    assert json.loads(tsa.get(f"{PREFIX}lookup/leaf/{leaf}")[2])["matches"][0]["leaf_hash"] == leaf
    gen_ms = int(tst["gen_time"].native.timestamp() * 1000)
    window = json.loads(tsa.get(f"{PREFIX}lookup/time?from={gen_ms}&to={gen_ms + 1}")[2])
    indices = [m["index"] for m in window["matches"]]
    assert found[0]["index"] in indices
    before, after = window["boundary_before"], window["boundary_after"]
    if before:
        assert (
            before["index"] == indices[0] - 1
            and before["gen_time"] < window["matches"][0]["gen_time"]
        )
    if after:
        assert after["index"] == indices[-1] + 1
    assert tsa.get(f"{PREFIX}lookup/leaf/zz")[0] == 400
    assert tsa.get("/ledger/nope/checkpoint")[0] == 404


def _gen_ms(token: bytes) -> int:
    tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    return int(tst["gen_time"].native.timestamp() * 1000)


def _walk(tsa: TsaServer, path: str) -> list[dict]:
    pages = []
    while path:
        status, _, body = tsa.get(path)
        assert status == 200, body
        pages.append(json.loads(body))
        path = pages[-1]["next"]
        assert len(pages) < 50
    return pages


def test_time_lookup_pages_cover_the_window_exactly_once(tsa: TsaServer, issued) -> None:
    from ledger.checkpoint import parse_vkey
    from ledger.proof_file import ProofFile

    published(tsa, covered(issued))
    verifier = parse_vkey(tsa.get(PREFIX + "vkey")[2].decode().strip()).verifier()
    start_ms, end_ms = _gen_ms(issued[0]), _gen_ms(issued[-1]) + 1
    pages = _walk(tsa, f"{PREFIX}lookup/time?from={start_ms}&to={end_ms}")
    assert len(pages) >= 3  # 300 entries, 100 a page
    size, first, end = pages[0]["size"], pages[0]["first"], pages[0]["end"]
    assert all((p["size"], p["first"], p["end"]) == (size, first, end) for p in pages)
    assert all(len(p["matches"]) <= 100 for p in pages)
    indices = [m["index"] for p in pages for m in p["matches"]]
    assert indices == list(range(first, end))  # every entry once, in order
    assert end - first >= len(issued)
    entries = fetch_entries(tsa, size)
    for match in [m for p in pages for m in p["matches"]]:
        token = base64.b64decode(match["token"])
        assert token == entries[match["index"]]
        assert start_ms <= _gen_ms(token) < end_ms
        at = ProofFile.parse(match["tlog_proof"]).verify(token, verifier)
        assert at.size == size  # every page proves against the one checkpoint it names
    # The boundary leaves, on the first and the last page only, close the window.
    before, after = pages[0]["boundary_before"], pages[-1]["boundary_after"]
    assert all(p["boundary_before"] is None for p in pages[1:])
    assert all(p["boundary_after"] is None for p in pages[:-1])
    assert before is None or (
        before["index"] == first - 1 and _gen_ms(base64.b64decode(before["token"])) < start_ms
    )
    assert after is None or (
        after["index"] == end and _gen_ms(base64.b64decode(after["token"])) >= end_ms
    )
    for boundary in (before, after):
        if boundary is not None:
            ProofFile.parse(boundary["tlog_proof"]).verify(
                base64.b64decode(boundary["token"]), verifier
            )
    window = f"{PREFIX}lookup/time?from={start_ms}&to={end_ms}"
    assert tsa.get(f"{window}&start={end + 1}")[0] == 400
    assert tsa.get(f"{window}&size={size + 1000000}")[0] == 400


def test_imprint_lookup_pages(make_server) -> None:
    server = make_server(ledger={"max_lookup_results": 2}).start()
    for _ in range(5):
        reply = parse_response(server.post_query(make_request(b"same document"))[2])
        assert reply["status"]["status"].native == "granted"
    token = reply["time_stamp_token"].dump()
    published(server, covered([token]))
    imprint = hashlib.sha256(b"same document").hexdigest()
    pages = _walk(server, f"{PREFIX}lookup/imprint/{imprint}")
    assert [len(p["matches"]) for p in pages] == [2, 2, 1]
    assert [m["index"] for p in pages for m in p["matches"]] == [0, 1, 2, 3, 4]
    assert len({p["size"] for p in pages}) == 1


BAD_NUMBERS = [
    "checkpoints/99999999999999999999",
    "checkpoints/9223372036854775808",
    "checkpoints/%C2%B2",  # "²": str.isdigit() says yes, int() says no
    "chain/99999999999999999999",
    "proof/inclusion?index=0&size=99999999999999999999",
    "proof/inclusion?index=99999999999999999999",
    "proof/inclusion?index=%D9%A1",  # "١", an Arabic-Indic digit
    "proof/consistency?old=1&new=99999999999999999999",
    "proof/consistency?old=99999999999999999999",
    "lookup/time?from=0&to=99999999999999999999",
    "lookup/time?from=0&to=1&start=99999999999999999999",
    "lookup/time?from=-1&to=1",
    "tlog-proof/99999999999999999999",
    "lookup/serial/" + "f" * 41,
    "lookup/serial/-1",
    "lookup/serial/f_f",
    "lookup/imprint/" + "ab" * 65,
    "lookup/imprint/" + "a" * 5000,
]


def test_out_of_range_numbers_are_client_errors(tsa: TsaServer, issued) -> None:
    published(tsa, covered(issued))
    for path in BAD_NUMBERS:
        status, _, body = tsa.get(PREFIX + path)
        assert status in (400, 404), (path, status, body)
        assert b"internal error" not in body and body.strip(), (path, body)
    for serial in ("f" * 41, "-1", "1" * 200, "%201", "0x"):
        status, _, body = tsa.get(f"/tokens/{serial}")
        assert status == 400 and b"160 bits" in body, (serial, status, body)
    assert "OverflowError" not in tsa.log() and "unhandled error" not in tsa.log()
