"""Reading a POST /verify request: the token, the data (hashed as it streams) or its
digest, and the caller's expectations, each bounded in size; anything malformed is a
BadInput with the HTTP status and a reason for the client (web/verify/handler.py has the forms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509

from tsa_server.rfc3161.verify import (
    CertificateDecodeError,
    LoadedToken,
    TokenDecodeError,
    load_certificates,
    load_token,
)
from tsa_server.rfc3161.verify_checks import MAX_EMBEDDED
from tsa_server.rfc3161.verify_crypto import HASHES, new_hash
from tsa_server.web.bodies import BodyTooLarge, JsonRejected, load_json, read_bounded
from tsa_server.web.handlers import WebState
from tsa_server.web.serving import SlowBody

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
    token_raw: bytes | str | None = None  # the token part as sent (for the verifier)
    imprint_algorithm: str | None = None
    digest: bytes | None = None
    data_bytes: int | None = None  # set when a data part was hashed
    data_digest: bytes | None = None  # None when the token's algorithm is unsupported
    digest_algorithm: str | None = None
    nonce: int | None = None
    policy: str | None = None
    tsa_name: str | None = None
    certificates: list[asn1_x509.Certificate] = field(default_factory=list)


async def read_input(request: web.Request, state: WebState) -> VerifyInput:
    """Parse a multipart or JSON request; BadInput for anything malformed or too large."""
    content_type = request.content_type
    if content_type == MULTIPART_TYPE:
        limit = state.max_token_bytes * 2 + state.max_data_bytes + _OVERHEAD
        _check_length(request, limit)
        given = await _read_multipart(request, state)
    elif content_type == JSON_TYPE:
        limit = state.max_token_bytes * 3 + _OVERHEAD  # base64 token and certificates
        try:
            raw = await read_bounded(request, limit)
        except BodyTooLarge as exc:
            raise BadInput(413, exc.reason) from None
        given = _parse_json(raw, state)
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
    except (BadInput, SlowBody):  # SlowBody: the serving layer's 408, not a parse error
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
    chunks: list[bytes] = []
    size = 0
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
        body = load_json(raw)
    except JsonRejected as exc:
        raise BadInput(400, f"the body is refused: {exc}") from None
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
    given.token, given.token_raw = token, raw
    if token.content_info is not None:
        # Now, while it is the bytes as received: once the verifier has walked the
        # structure, asn1crypto re-encodes it on dump() (tens of ms).
        given.token_der = token.content_info.dump()
    given.imprint_algorithm = imprint_algorithm(token)


def _load_certificates(raw: bytes) -> list[asn1_x509.Certificate]:
    # Counted before the full parse (it runs on the event loop): PEM blocks by their
    # armour, a PKCS#7 bag by its SET's elements.
    _check_count(raw.count(b"-----BEGIN"))
    try:
        bag = cms.ContentInfo.load(raw)
        count = (
            len(bag["content"]["certificates"])
            if bag["content_type"].native == "signed_data"
            else 0
        )
    except Exception:  # asn1crypto raises many types: load_certificates says what it is
        count = 0
    _check_count(count)
    try:
        certificates = load_certificates(raw)
    except CertificateDecodeError as exc:
        raise BadInput(400, f"certificates: {exc}") from None
    _check_count(len(certificates))
    return certificates


def _check_count(count: int) -> None:
    if count > MAX_EMBEDDED:
        raise BadInput(
            400,
            f"certificates: {count} given, at most {MAX_EMBEDDED}: send the TSA certificate "
            "and its intermediates only",
        )


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


def from_fields(token: bytes, digest: str) -> VerifyInput:
    """A request read elsewhere (the verification center's form, web/pages/check.py): the
    token as sent and the data's digest in hex, checked as the JSON form checks them."""
    given = VerifyInput()
    _set_token(given, token)
    _set_text_field(given, "digest", digest)
    return given
