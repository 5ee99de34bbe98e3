"""ledger.checkpoint: the B.4 vector, published signed-note examples, vkeys, grease, and
strict rejection of malformed checkpoints and notes."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Verifier,
    NoteSignature,
    NoteSigner,
    cosignature_message,
    cosignature_timestamp,
    encode_vkey,
    key_id,
    open_checkpoint,
    open_note,
    parse_note,
    parse_vkey,
    sign_checkpoint,
    sign_note,
)
from ledger.errors import CheckpointError, NoteError

NOTES = json.loads((Path(__file__).parent / "vectors" / "notes.json").read_text("utf-8"))
B4 = NOTES["b4"]
EM = "\u2014"
ROOT8 = base64.b64decode("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
ORIGIN = "tsa.example.com/ledger/2026"
WITNESS = "witness.example.org/w1"


def keypair(seed: bytes) -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture(scope="module")
def log_signer() -> NoteSigner:
    key, public = keypair(bytes.fromhex(B4["log_seed"]))
    return NoteSigner(ORIGIN, public, key.sign)


@pytest.fixture(scope="module")
def witness_signer() -> CosignatureSigner:
    key, public = keypair(bytes.fromhex(B4["witness_seed"]))
    return CosignatureSigner(WITNESS, public, key.sign, lambda: B4["witness_time"])


# --- the B.4 vector ---------------------------------------------------------------------


def test_b4_vkeys(log_signer: NoteSigner, witness_signer: CosignatureSigner) -> None:
    assert Ed25519Verifier(ORIGIN, log_signer.public_key).vkey == B4["log_vkey"]
    assert CosignatureVerifier(WITNESS, witness_signer.public_key).vkey == B4["witness_vkey"]
    assert log_signer.key_id.hex() == "0f4bc56f"
    assert witness_signer.key_id.hex() == "10e47819"


def test_b4_note_is_reproduced_byte_for_byte(
    log_signer: NoteSigner, witness_signer: CosignatureSigner
) -> None:
    checkpoint = Checkpoint(ORIGIN, 8, ROOT8)
    assert sign_checkpoint(checkpoint, [log_signer, witness_signer]) == B4["note"].encode()
    message = cosignature_message(checkpoint.body(), B4["witness_time"])
    assert message == B4["witness_message"].encode()


def test_b4_both_signatures_verify() -> None:
    log = parse_vkey(B4["log_vkey"]).verifier()
    witness = parse_vkey(B4["witness_vkey"]).verifier()
    checkpoint, opened = open_checkpoint(B4["note"], log, [witness])
    assert checkpoint == Checkpoint(ORIGIN, 8, ROOT8)
    assert opened.verified_names == {ORIGIN, WITNESS}
    cosig = next(s for s in opened.verified if s.name == WITNESS)
    assert cosignature_timestamp(cosig.signature) == 1767225600
    # Without the witness key its line is simply ignored.
    assert open_checkpoint(B4["note"], log)[1].verified_names == {ORIGIN}


def test_checkpoint_needs_the_log_signature_and_origin() -> None:
    log = parse_vkey(B4["log_vkey"]).verifier()
    witness = parse_vkey(B4["witness_vkey"]).verifier()
    other_log = Ed25519Verifier("other.example/log", log.public_key)
    with pytest.raises(NoteError):
        open_checkpoint(B4["note"], other_log, [witness])
    with pytest.raises(CheckpointError):
        open_checkpoint(B4["note"], log, origin="tsa.example.com/ledger/2027")


# --- published examples -----------------------------------------------------------------


def test_c2sp_signed_note_example() -> None:
    example = NOTES["c2sp_example"]
    key = parse_vkey(example["vkey"])
    assert (key.name, key.key_id.hex(), key.sig_type) == ("example.com/foo", "530d903a", 1)
    assert key.encode() == example["vkey"]
    opened = open_note(example["note"], [key.verifier()])
    assert opened.note.text == "This is an example message.\n"
    assert parse_note(example["note"]).encode() == example["note"].encode()


def test_go_sumdb_note_example() -> None:
    go = NOTES["go_sumdb"]
    peter, enoch = parse_vkey(go["peter_vkey"]), parse_vkey(go["enoch_vkey"])
    seed = base64.b64decode(go["peter_skey"].split("+", 4)[4])[1:]  # PRIVATE+KEY+name+id+key
    key, public = keypair(seed)
    assert public == peter.public_key
    signed = sign_note(go["text"], [NoteSigner("PeterNeumann", public, key.sign)])
    assert signed == (go["text"] + "\n" + go["peter_line"]).encode()
    both = go["text"] + "\n" + go["peter_line"] + go["enoch_line"]
    opened = open_note(both, [peter.verifier(), enoch.verifier()])
    assert opened.verified_names == {"PeterNeumann", "EnochRoot"}
    assert open_note(both, [enoch.verifier()]).verified_names == {"EnochRoot"}


def test_tlog_checkpoint_example_parses() -> None:
    note = parse_note(NOTES["tlog_checkpoint_example"]["note"])
    checkpoint = Checkpoint.parse(note.text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert cosignature_timestamp(note.signatures[1].signature) == 1679315147


# --- signing: grease, unknown keys, existing lines, bad signers --------------------------


def test_grease_lines_are_shuffled_and_ignored(log_signer, witness_signer) -> None:
    checkpoint = Checkpoint(ORIGIN, 8, ROOT8)
    rng = random.Random(7)
    data = sign_checkpoint(checkpoint, [log_signer, witness_signer], grease=6, rng=rng)
    note = parse_note(data)
    assert len(note.signatures) == 8
    assert [s.name for s in note.signatures] != [ORIGIN, WITNESS] + ["grease.invalid"] * 6
    log, witness = parse_vkey(B4["log_vkey"]).verifier(), parse_vkey(B4["witness_vkey"]).verifier()
    assert open_checkpoint(data, log, [witness])[1].verified_names == {ORIGIN, WITNESS}


def test_unknown_signer_with_known_name_is_ignored(log_signer) -> None:
    impostor = NoteSignature(ORIGIN, b"\x00\x00\x00\x00", b"\x01" * 64)
    data = sign_note(Checkpoint(ORIGIN, 8, ROOT8).body(), [log_signer], existing=[impostor])
    assert open_note(data, [parse_vkey(B4["log_vkey"]).verifier()]).verified_names == {ORIGIN}


def test_invalid_signature_of_a_known_key_rejects_the_note() -> None:
    lines = B4["note"].split("\n")
    blob = bytearray(base64.b64decode(lines[4].split(" ")[2]))
    blob[10] ^= 1
    lines[4] = f"{EM} {ORIGIN} {base64.b64encode(bytes(blob)).decode()}"
    with pytest.raises(NoteError, match="invalid signature"):
        open_note("\n".join(lines), [parse_vkey(B4["log_vkey"]).verifier()])


def test_no_known_signature_rejects_the_note() -> None:
    stranger = Ed25519Verifier("stranger.example", bytes(32))
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(B4["note"], [stranger])
    with pytest.raises(NoteError):
        open_note(B4["note"], [])


def test_duplicate_verifiers_or_signatures_are_rejected(log_signer) -> None:
    log = parse_vkey(B4["log_vkey"]).verifier()
    with pytest.raises(NoteError):
        open_note(B4["note"], [log, log])
    body = Checkpoint(ORIGIN, 8, ROOT8).body()
    twice = sign_note(body, [log_signer, log_signer])
    with pytest.raises(NoteError, match="twice"):
        open_note(twice, [log])


def test_signer_with_the_wrong_key_fails_early() -> None:
    key, _ = keypair(bytes(32))
    _, other_public = keypair(b"\x02" * 32)
    with pytest.raises(NoteError):
        sign_note("text\n", [NoteSigner("log.example", other_public, key.sign)])
    witness_key, witness_public = keypair(b"\x01" * 32)
    late = CosignatureSigner("w.example", witness_public, witness_key.sign, lambda: -1)
    with pytest.raises(NoteError):
        sign_note("text\n", [late])


def test_sign_note_rejects_bad_text(log_signer) -> None:
    for text in ["no newline", "tab\there\n", ""]:
        with pytest.raises(NoteError):
            sign_note(text, [log_signer])
    with pytest.raises(NoteError):
        sign_note("text\n", [])


# --- vkeys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vkey",
    [
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong ID
        "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # upper hex
        "example.com/foo+530d903a",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",  # bad b64
        "example.com foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "a+b+c+d",
    ],
)
def test_parse_vkey_rejects_malformed(vkey: str) -> None:
    with pytest.raises(NoteError):
        parse_vkey(vkey)


def test_vkey_round_trip_and_unsupported_type() -> None:
    vkey = encode_vkey("log.example/x", 0x02, b"\x30" * 91)
    key = parse_vkey(vkey)
    assert key.encode() == vkey and key.key_id == key_id("log.example/x", 2, b"\x30" * 91)
    with pytest.raises(NoteError):
        key.verifier()


# --- strict parsing -----------------------------------------------------------------------

GOOD_BODY = f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("leading-zero-size", f"{ORIGIN}\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("plus-size", f"{ORIGIN}\n+8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("negative-size", f"{ORIGIN}\n-8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("spaced-size", f"{ORIGIN}\n 8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("unicode-digit-size", f"{ORIGIN}\n\uff18\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("size-2^64", f"{ORIGIN}\n{1 << 64}\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("empty-size", f"{ORIGIN}\n\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("unpadded-root", f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n"),
        ("non-canonical-root", f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n"),
        ("url-safe-root", f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=\n"),
        ("short-root", f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQw==\n"),
        ("empty-origin", "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("origin-with-space", "tsa example\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("origin-with-plus", "tsa+example\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("origin-nbsp", "tsa\u00a0example\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("extension-line", GOOD_BODY + "extra\n"),
        ("missing-final-newline", GOOD_BODY[:-1]),
        ("crlf", GOOD_BODY.replace("\n", "\r\n")),
        ("two-lines", f"{ORIGIN}\n8\n"),
        ("nul", GOOD_BODY.replace("8", "8\x00")),
    ],
)
def test_checkpoint_parse_rejects(name: str, body: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(body)


def test_checkpoint_round_trip_and_validation() -> None:
    checkpoint = Checkpoint.parse(GOOD_BODY.encode())
    assert checkpoint.body() == GOOD_BODY.encode()
    assert Checkpoint.parse(f"{ORIGIN}\n0\n{'A' * 43}=\n").size == 0
    with pytest.raises(CheckpointError):
        Checkpoint.parse(b"\xff\xfe\n8\n")
    for bad in [("", 1, ROOT8), (ORIGIN, -1, ROOT8), (ORIGIN, 1 << 64, ROOT8), (ORIGIN, 1, b"")]:
        with pytest.raises(CheckpointError):
            Checkpoint(*bad)
    with pytest.raises(CheckpointError):
        Checkpoint(ORIGIN, True, ROOT8)


ESC_BODY = GOOD_BODY.replace("8", "8\x1b")
SIG = "D0vFb8uMEdaygTGwfMX/dAVQI9ijTLSch8GPm1qELIR/44NCR9vAZXMbDzicCYJ89IeKuMpfSfgfNSxHS04fwsv0FQ8="


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("no-blank-line", f"{GOOD_BODY}{EM} {ORIGIN} {SIG}\n"),
        ("no-signatures", f"{GOOD_BODY}\n"),
        ("missing-final-newline", f"{GOOD_BODY}\n{EM} {ORIGIN} {SIG}"),
        ("hyphen-not-em-dash", f"{GOOD_BODY}\n- {ORIGIN} {SIG}\n"),
        ("en-dash", f"{GOOD_BODY}\n\u2013 {ORIGIN} {SIG}\n"),
        ("no-space-after-dash", f"{GOOD_BODY}\n{EM}{ORIGIN} {SIG}\n"),
        ("extra-space", f"{GOOD_BODY}\n{EM} {ORIGIN}  {SIG}\n"),
        ("name-with-plus", f"{GOOD_BODY}\n{EM} a+b {SIG}\n"),
        ("empty-name", f"{GOOD_BODY}\n{EM}  {SIG}\n"),
        ("bad-base64", f"{GOOD_BODY}\n{EM} {ORIGIN} {SIG[:-2]}\n"),
        ("non-canonical-base64", f"{GOOD_BODY}\n{EM} {ORIGIN} AAAAAB==\n"),
        ("short-signature", f"{GOOD_BODY}\n{EM} {ORIGIN} AAAAAA==\n"),
        ("trailing-junk-line", f"{GOOD_BODY}\n{EM} {ORIGIN} {SIG}\njunk\n"),
        ("blank-line-at-end", f"{GOOD_BODY}\n{EM} {ORIGIN} {SIG}\n\n"),
        ("control-char", ESC_BODY + f"\n{EM} {ORIGIN} {SIG}\n"),
        ("too-many-signatures", f"{GOOD_BODY}\n" + f"{EM} {ORIGIN} {SIG}\n" * 65),
    ],
)
def test_parse_note_rejects(name: str, note: str) -> None:
    with pytest.raises(NoteError):
        parse_note(note)


def test_parse_note_rejects_invalid_utf8() -> None:
    with pytest.raises(NoteError):
        parse_note(GOOD_BODY.encode() + b"\n\xe2\x80 x AAAAAAA=\n")


def test_note_text_may_contain_blank_lines(log_signer) -> None:
    text = "first\n\nthird\n"
    data = sign_note(text, [log_signer])
    assert open_note(data, [Ed25519Verifier(ORIGIN, log_signer.public_key)]).note.text == text


def test_vkey_whose_base64_contains_plus_signs() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ledger.checkpoint import encode_vkey, parse_vkey

    for seed in range(256):
        public = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32).public_key()
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        vkey = encode_vkey("example.com/log", 1, raw)
        if "+" in vkey.split("+", 2)[2]:
            break
    else:
        raise AssertionError("no seed gives a '+' in the base64 key")
    assert parse_vkey(vkey).public_key == raw
