"""POST /verify: check a time-stamp token for a relying party and explain the verdict.

Two request forms:

* ``multipart/form-data`` with the parts ``token`` (file: TimeStampResp or bare token,
  DER/PEM/base64) and either ``data`` (file) or ``digest`` (hex), and optionally
  ``digest_algorithm``, ``nonce`` (decimal or 0x-hex), ``policy`` (dotted OID),
  ``tsa_name`` (RFC 4514 name or a common name) and ``certificates`` (PEM/DER file: the
  TSA certificate and intermediates for tokens of other TSAs that carry none).
* ``application/json``: ``{"token": base64 or PEM, "digest": hex, ...}`` with the same
  optional keys (``certificates`` as PEM text or base64 DER).

Hashing the data. The data is never held in memory: it is hashed chunk by chunk as it
arrives, with the algorithm of the token's messageImprint. That algorithm is only known
once the token is read, so the ``token`` part must come before the ``data`` part (a
browser form or ``curl -F`` sends parts in the order given); a data part that comes
first is a 400 that says so. Hashing with every accepted algorithm at once would lift
the ordering rule at ten times the CPU for every upload; the rule is cheaper.

Answers: 200 with the verification report for every request that could be decoded,
valid or not (``"valid": false`` is a verdict, not an HTTP error); 400 with
``{"error": reason}`` for malformed input (not multipart or JSON, missing or duplicate
parts, bad hex or base64, a token that is not a time-stamp token); 413 beyond the size
bounds ([verify] max_token_bytes, max_data_bytes); 415 for other content types.

The server's own certificate chain is always offered to the verifier as untrusted
candidates (like ``openssl ts -verify -untrusted``), so tokens this TSA issued without
certReq verify too; the chain must still lead to a configured trust root, and the
signer certificate must still match the token's SID and signed ESSCertIDv2 hash.

For a token whose signer certificate is this TSA's, the answer adds the ledger entry
with an RFC 6962 inclusion proof against the current tree (checkpoints are a later
issue: ``"checkpoint": null``), or ``{"found": false, ...}``, which is a serious finding
when the signature verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from asn1crypto import core, tsp
from asn1crypto import x509 as asn1_x509

from ledger.hashing import leaf_hash
from ledger.merkle import MemoryTree
from ledger.proofs import inclusion_proof, verify_inclusion
from ledger.store.base import Reader
from ledger.store.sqlite import SqliteReader
from tsa_server.rfc3161.verify import (
    CertificateDecodeError,
    LoadedToken,
    TokenDecodeError,
    VerificationReport,
    VerifyOptions,
    load_certificates,
    load_token,
    verify_token,
)
from tsa_server.rfc3161.verify_crypto import HASHES, new_hash
from tsa_server.web.handlers import STATE, WebState

log = logging.getLogger("tsa.web.verify")

JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
#: Largest text field (digest, nonce, policy, ...).
FIELD_LIMIT = 4096
#: Room for the small fields and the multipart framing on top of token and data.
_OVERHEAD = 1 << 20
_CHUNK = 256 * 1024
_TEXT_FIELDS = ("digest", "digest_algorithm", "nonce", "policy", "tsa_name")
_JSON_KEYS = frozenset(("token", "certificates", *_TEXT_FIELDS))
_PLAIN_ENCODINGS = frozenset(("", "binary", "7bit", "8bit", "identity"))


class BadInput(Exception):
    """A request this endpoint refuses: HTTP status and a reason for the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class VerifyInput:
    """What a request asks: the token, what to compare its imprint with, expectations."""

    token: LoadedToken | None = None
    token_der: bytes | None = None  # the TimeStampToken as received, for the ledger
    imprint_algorithm: str | None = None
    digest: bytes | None = None
    data_bytes: int | None = None  # set when a data part was hashed
    data_digest: bytes | None = None  # None when the token's algorithm is unsupported
    digest_algorithm: str | None = None
    nonce: int | None = None
    policy: str | None = None
    tsa_name: str | None = None
    certificates: list[asn1_x509.Certificate] = field(default_factory=list)


async def verify(request: web.Request) -> web.Response:
    """POST /verify: the report as JSON (200), or {"error": reason} (400/413/415)."""
    state = request.app[STATE]
    try:
        given = await read_input(request, state)
    except BadInput as exc:
        return web.json_response({"error": exc.reason}, status=exc.status)
    assert given.token is not None
    options = VerifyOptions(
        trust_roots=state.trust_roots,
        extra_certs=[*given.certificates, *state.tsa_chain],
        digest=given.data_digest if given.data_bytes is not None else given.digest,
        digest_algorithm=_digest_algorithm(given),
        nonce=given.nonce,
        policy=given.policy,
        tsa_name=given.tsa_name,
    )
    # Signature and path checks are CPU work: keep them off the event loop (issuance).
    report = await asyncio.to_thread(verify_token, given.token, options)
    body = report_json(report, state.time_zone, given)
    body["issued_by_this_tsa"] = False
    body["ledger"] = None
    if _signed_by(report, state.tsa_chain[0] if state.tsa_chain else None):
        body["issued_by_this_tsa"] = report.check("signature").passed
        body["ledger"] = await _ledger_section(state, given.token_der, report)
    return web.json_response(body)


def _digest_algorithm(given: VerifyInput) -> str | None:
    if given.data_bytes is not None:
        # The data was hashed with the token's algorithm; an algorithm the caller named
        # still has to be the token's.
        return given.digest_algorithm or given.imprint_algorithm
    return given.digest_algorithm


# --- reading the request ------------------------------------------------------------------


async def read_input(request: web.Request, state: WebState) -> VerifyInput:
    """Parse a multipart or JSON request; BadInput for anything malformed or too large."""
    content_type = request.content_type
    if content_type == MULTIPART_TYPE:
        limit = state.max_token_bytes * 2 + state.max_data_bytes + _OVERHEAD
        _check_length(request, limit)
        given = await _read_multipart(request, state)
    elif content_type == JSON_TYPE:
        limit = state.max_token_bytes * 3 + _OVERHEAD  # base64 token and certificates
        _check_length(request, limit)
        given = _parse_json(await _read_bounded(request, limit), state)
    else:
        raise BadInput(415, f"send {MULTIPART_TYPE} or {JSON_TYPE}, not {content_type}")
    if given.token is None:
        raise BadInput(400, "the token is missing")
    if given.digest is None and given.data_bytes is None:
        raise BadInput(400, "give the data (a data file) or its digest (hex)")
    if given.digest is not None and given.data_bytes is not None:
        raise BadInput(400, "give either the data or its digest, not both")
    return given


def _check_length(request: web.Request, limit: int) -> None:
    length = request.content_length
    if length is not None and length > limit:
        raise BadInput(413, f"the request body exceeds {limit} bytes")


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BadInput(413, f"the request body exceeds {limit} bytes")


async def _read_multipart(request: web.Request, state: WebState) -> VerifyInput:
    given = VerifyInput()
    seen: set[str] = set()
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if isinstance(part, MultipartReader):
                raise BadInput(400, "nested multipart bodies are not accepted")
            name = part.name
            if not name:
                raise BadInput(400, "every part needs a name (Content-Disposition: form-data)")
            if name in seen:
                raise BadInput(400, f"the part {name!r} is given twice")
            seen.add(name)
            _check_plain(part, name)
            await _read_part(part, name, given, state)
    except BadInput:
        raise
    except Exception as exc:  # aiohttp's multipart parser raises many types on bad input
        raise BadInput(400, f"malformed multipart body: {type(exc).__name__}: {exc}") from None
    return given


def _check_plain(part: BodyPartReader, name: str) -> None:
    for header in (hdrs.CONTENT_TRANSFER_ENCODING, hdrs.CONTENT_ENCODING):
        value = part.headers.get(header, "").strip().lower()
        if value not in _PLAIN_ENCODINGS:
            raise BadInput(400, f"the part {name!r} has {header}: {value}; send it unencoded")


async def _read_part(part: BodyPartReader, name: str, given: VerifyInput, state: WebState) -> None:
    if name == "token":
        raw = await _read_part_bytes(part, state.max_token_bytes, "token")
        _set_token(given, raw)
    elif name == "data":
        if given.token is None:
            raise BadInput(
                400,
                "the token part must come before the data part: the data is hashed as it "
                "arrives, with the token's imprint algorithm",
            )
        given.data_bytes, given.data_digest = await _hash_part(
            part, given.imprint_algorithm, state.max_data_bytes
        )
    elif name == "certificates":
        raw = await _read_part_bytes(part, state.max_token_bytes, "certificates")
        given.certificates = _load_certificates(raw)
    elif name in _TEXT_FIELDS:
        raw = await _read_part_bytes(part, FIELD_LIMIT, name)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(400, f"the field {name!r} is not UTF-8 text") from None
        _set_text_field(given, name, text)
    else:
        raise BadInput(
            400,
            f"unknown part {name!r}; expected token, data or digest, and optionally "
            "digest_algorithm, nonce, policy, tsa_name, certificates",
        )


async def _read_part_bytes(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(min(_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BadInput(413, f"the {what} exceeds {limit} bytes")
    return b"".join(chunks)


async def _hash_part(
    part: BodyPartReader, algorithm: str | None, limit: int
) -> tuple[int, bytes | None]:
    """Stream the data part through the token's hash; (size, digest or None)."""
    ctx = new_hash(algorithm) if algorithm in HASHES else None
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BadInput(413, f"the data exceeds {limit} bytes ([verify] max_data_bytes)")
        if ctx is not None:
            ctx.update(chunk)
    # Unsupported or unreadable algorithm: no digest; the imprint check says why.
    return size, ctx.finalize() if ctx is not None else None


def _parse_json(raw: bytes, state: WebState) -> VerifyInput:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput(400, "the JSON body must be an object")
    if "data" in body:
        raise BadInput(400, "JSON requests give the digest; send data as multipart")
    unknown = sorted(set(body) - _JSON_KEYS)
    if unknown:
        raise BadInput(400, f"unknown key(s): {', '.join(unknown)}")
    given = VerifyInput()
    token = body.get("token")
    if token is not None:
        if not isinstance(token, str):
            raise BadInput(400, "token must be a base64 (or PEM) string")
        if len(token) > state.max_token_bytes * 2:
            raise BadInput(413, f"the token exceeds {state.max_token_bytes} bytes")
        _set_token(given, token)
    certificates = body.get("certificates")
    if certificates is not None:
        if not isinstance(certificates, str):
            raise BadInput(400, "certificates must be PEM text or base64 DER")
        given.certificates = _load_certificates(certificates.encode("utf-8"))
    for name in _TEXT_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if name == "nonce" and isinstance(value, int) and not isinstance(value, bool):
            given.nonce = value
            continue
        if not isinstance(value, str):
            raise BadInput(400, f"{name} must be a string")
        _set_text_field(given, name, value)
    return given


def _set_token(given: VerifyInput, raw: bytes | str) -> None:
    try:
        token = load_token(raw)
    except TokenDecodeError as exc:
        raise BadInput(400, f"the token is not a time-stamp token: {exc}") from None
    given.token = token
    if token.content_info is not None:
        # Now, while it is the bytes as received: once the verifier has walked the
        # structure, asn1crypto re-encodes it on dump() (tens of ms).
        given.token_der = token.content_info.dump()
    given.imprint_algorithm = imprint_algorithm(token)


def _load_certificates(raw: bytes) -> list[asn1_x509.Certificate]:
    try:
        return load_certificates(raw)
    except CertificateDecodeError as exc:
        raise BadInput(400, f"certificates: {exc}") from None


def _set_text_field(given: VerifyInput, name: str, text: str) -> None:
    text = text.strip()
    if len(text) > FIELD_LIMIT:
        raise BadInput(413, f"the field {name!r} exceeds {FIELD_LIMIT} characters")
    if not text:
        raise BadInput(400, f"the field {name!r} is empty")
    if name == "digest":
        given.digest = parse_hex(text)
    elif name == "nonce":
        given.nonce = parse_int(text, "nonce")
    elif name == "policy":
        parts = text.split(".")
        if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts):
            raise BadInput(400, f"policy {text!r} is not a dotted OID")
        given.policy = text
    elif name == "digest_algorithm":
        given.digest_algorithm = text
    else:
        given.tsa_name = text


def parse_hex(text: str) -> bytes:
    """A digest written in hex (case, blanks and ':' separators allowed); BadInput if not."""
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        value = bytes.fromhex(cleaned)
    except ValueError:
        raise BadInput(400, "digest is not hexadecimal") from None
    if not value:
        raise BadInput(400, "digest is empty")
    return value


def parse_int(text: str, what: str) -> int:
    """Decimal or 0x-hexadecimal integer; BadInput if not."""
    body = text.strip()
    try:
        if body.lower().startswith(("0x", "-0x")):
            return int(body, 16)
        if not body.lstrip("-").isdigit() or not body.isascii():
            raise ValueError
        return int(body, 10)
    except ValueError:
        raise BadInput(400, f"{what} must be a decimal or 0x-hexadecimal integer") from None


def imprint_algorithm(token: LoadedToken) -> str | None:
    """The messageImprint's hash algorithm (asn1crypto name) or None when unreadable.

    Only used to pick the hash for streamed data; the verifier checks the token fully.
    """
    try:
        encap = token.content_info["content"]["encap_content_info"]  # type: ignore[index]
        if isinstance(encap["content"], core.Void):
            return None
        tst = tsp.TSTInfo.load(bytes(encap["content"]), strict=True)
        return str(tst["message_imprint"]["hash_algorithm"]["algorithm"].native)
    except Exception:  # malformed token: the verifier reports it
        return None


# --- the answer ---------------------------------------------------------------------------


def report_json(
    report: VerificationReport, time_zone: str, given: VerifyInput | None = None
) -> dict[str, Any]:
    """The report as JSON, with genTime in UTC and in ``time_zone`` and the serial in hex."""
    body = report.to_dict()
    fields = report.fields
    if fields is not None:
        out = body["fields"]
        out["serial_hex"] = format(fields.serial_number, "#x")
        out["gen_time_utc"] = fields.gen_time_text
        out["gen_time_local"] = fields.gen_time.astimezone(zoneinfo.ZoneInfo(time_zone)).isoformat()
        out["time_zone"] = time_zone
    if given is not None:
        if given.data_bytes is not None:
            body["compared_with"] = {
                "data_bytes": given.data_bytes,
                "algorithm": given.imprint_algorithm,
                "digest": given.data_digest.hex() if given.data_digest is not None else None,
            }
        else:
            assert given.digest is not None
            body["compared_with"] = {"digest": given.digest.hex()}
        # Say it in the reason: the verifier only saw a digest, the client sent data.
        if given.data_bytes is not None:
            body["checks"] = [_data_wording(c) for c in body["checks"]]
    return body


def _data_wording(check: dict[str, Any]) -> dict[str, Any]:
    if check["name"] != "message_imprint":
        return check
    return {**check, "reason": check["reason"].replace("the given digest", "the uploaded data")}


def _signed_by(report: VerificationReport, cert: asn1_x509.Certificate | None) -> bool:
    signer = report.fields.signer if report.fields is not None else None
    if cert is None or signer is None:
        return False
    return signer.sha256_fingerprint == hashlib.sha256(cert.dump()).hexdigest()


async def _ledger_section(
    state: WebState, token_der: bytes | None, report: VerificationReport
) -> dict[str, Any]:
    assert report.fields is not None and token_der is not None
    serial = report.fields.serial_number
    leaf = leaf_hash(token_der)
    try:
        if state.ledger_path is not None:
            # Own read-only connection, in a thread: the proof reads every leaf hash.
            section = await asyncio.to_thread(_ledger_file_lookup, state.ledger_path, serial)
        else:
            section = ledger_lookup(state.ledger, serial)
    except Exception as exc:
        log.exception("ledger lookup for serial %#x failed", serial)
        return {"found": None, "error": f"the ledger could not be read: {type(exc).__name__}"}
    if not section["found"]:
        signature_ok = report.check("signature").passed
        if signature_ok:
            log.error("token serial %#x signed by this TSA is not in the ledger", serial)
            section["reason"] = (
                f"this TSA signed the token (serial {serial:#x}) but its ledger has no entry "
                "for it: the ledger is incomplete or the signing key was used outside it"
            )
        else:
            section["reason"] = (
                f"the ledger has no entry with serial {serial:#x}, and the token's signature "
                "does not verify: this TSA did not issue this token as it is"
            )
        return section
    if bytes.fromhex(section["leaf_hash"]) != leaf:
        return {
            "found": True,
            "token_matches": False,
            "index": section["index"],
            "leaf_hash": section["leaf_hash"],
            "reason": "the ledger entry with this serial holds a different token: this is not "
            "the token this TSA issued (it was altered or re-encoded)",
        }
    return {**section, "token_matches": True}


def _ledger_file_lookup(path: str, serial: int) -> dict[str, Any]:
    reader = SqliteReader(path)
    try:
        return ledger_lookup(reader, serial)
    finally:
        reader.close()


def ledger_lookup(reader: Reader, serial: int) -> dict[str, Any]:
    """The entry with ``serial`` and its inclusion proof in the current tree.

    O(n) for now: it reads every entry's leaf hash and builds the tree in memory. That
    is acceptable at this stage; signed checkpoints and tiles (a later issue) will give
    O(log n) proofs against the latest checkpoint, which is why ``checkpoint`` is null.
    """
    entry = reader.entry_by_serial(serial)
    if entry is None:
        return {"found": False, "serial": format(serial, "#x")}
    size = reader.size()
    tree = MemoryTree(e.leaf_hash for e in reader.entries(0, size))
    if tree.size != size or entry.index >= size:
        raise RuntimeError(f"the ledger changed while it was read ({tree.size} of {size})")
    proof = inclusion_proof(entry.index, size, tree)
    root = tree.root()
    verify_inclusion(entry.index, size, entry.leaf_hash, proof, root)  # never serve a bad proof
    return {
        "found": True,
        "index": entry.index,
        "leaf_hash": entry.leaf_hash.hex(),
        "tree_size": size,
        "root": root.hex(),
        "inclusion_proof": [h.hex() for h in proof],
        "checkpoint": None,
    }
