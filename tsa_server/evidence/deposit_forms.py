"""A deposit request's fields into `DepositSpec`s: the hash-only JSON body and the
upload's metadata and files, checked field by field (P-7 fields, digests, tags, unknown
fields). Every refusal is one FieldError naming each offending field by its path
(``items[2].sha256``), which the API answers 422 ``{"error", "fields"}``. Beyond P-7's
depositor and work content, a new deposit must carry the applicant's statement, which
the certificate prints (items made before it was required show "not given").

The HTTP layer hands over decoded JSON and what the multipart reader delivered; the CLI
can hand over the same values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tsa_server.evidence.deposits import DepositSpec
from tsa_server.evidence.errors import InvalidInput
from tsa_server.evidence.records import check_tags
from tsa_server.evidence.uploads import UploadBody, file_name
from tsa_server.fees import Digests, FieldError, Mode, parse_deposit_form
from tsa_server.fees.deposit import OPTIONAL, REQUIRED, TIME_FIELDS
from tsa_server.fees.errors import unknown_field

#: Metadata fields shared by the items of a request (file name and media type are each
#: item's own).
FORM_FIELDS = frozenset(REQUIRED) | frozenset(OPTIONAL) - {"file_name", "media_type"}
_ITEM_FIELDS = frozenset({"sha256", "sha512", "sm3", "size", "file_name", "media_type", "tags"})
_UPLOAD_ITEM_FIELDS = frozenset({"sha256", "file_name", "tags"}) | FORM_FIELDS
_UPLOAD_DEFAULTS = {"file_name": "", "media_type": "application/octet-stream"}


def refuse_unknown(fields: Iterable[str], allowed: Iterable[str]) -> None:
    """FieldError naming every field of a request object the endpoint does not know."""
    allowed, fields = set(allowed), set(fields)
    unknown = sorted(fields - allowed)
    if unknown:
        raise FieldError({name: unknown_field(name, allowed, fields) for name in unknown})


def hash_only_specs(body: Mapping[str, Any], max_items: int) -> list[DepositSpec]:
    """`{"items": [...], shared metadata}` or one item's fields: the hash-only specs."""
    if "items" in body:
        raw_items = body["items"]
        shared = {k: v for k, v in body.items() if k != "items"}
        if not isinstance(raw_items, list) or not raw_items:
            raise FieldError({"items": "a non-empty list of items"})
        refuse_unknown(shared, FORM_FIELDS | {"tags"} | TIME_FIELDS)
        prefixes = [f"items[{i}]." for i in range(len(raw_items))]
    else:
        raw_items, shared, prefixes = [body], {}, [""]
    if len(raw_items) > max_items:
        raise FieldError({"items": f"at most {max_items} per request"})
    specs: list[DepositSpec] = []
    errors: dict[str, str] = {}
    for raw, prefix in zip(raw_items, prefixes, strict=True):
        spec = _spec(shared, raw, prefix, Mode.HASH_ONLY, hash_fields=True)
        if isinstance(spec, dict):
            errors.update(spec)
        else:
            specs.append(spec)
    if errors:
        raise FieldError(errors)
    return specs


def check_upload_metadata(metadata: dict[str, Any]) -> None:
    """Refuse (FieldError) bad upload metadata before any file is read: unknown fields,
    and every declared item's fields as far as they are known without its file."""
    refuse_unknown(metadata, FORM_FIELDS | {"tags", "items"} | TIME_FIELDS)
    per_file = metadata.get("items", [])
    if not isinstance(per_file, list):
        raise FieldError({"items": "a list with one object per file"})
    errors: dict[str, str] = {}
    for i, raw in enumerate(per_file or [{}]):
        prefix = f"items[{i}]."
        spec = _spec(
            metadata,
            _upload_item(raw),
            prefix,
            Mode.STORED,
            hash_fields=False,
            defaults=_UPLOAD_DEFAULTS,
        )
        if isinstance(spec, dict):
            errors.update(spec)
    if errors:
        raise FieldError(errors)


def upload_specs(body: UploadBody) -> tuple[list[DepositSpec], dict[str, Any]]:
    """The uploaded items' specs (FieldError) and the request described for its
    idempotency fingerprint (metadata, each file's name, media type and SHA-256)."""
    metadata = {k: v for k, v in body.metadata.items() if k != "items"}
    specs: list[DepositSpec] = []
    errors: dict[str, str] = {}
    for i, uploaded in enumerate(body.files):
        raw = _upload_item(body.per_file[i] if body.per_file else {})
        prefix = f"items[{i}]."
        defaults = {"file_name": uploaded.name, "media_type": uploaded.media_type}
        spec = _spec(metadata, raw, prefix, Mode.STORED, hash_fields=False, defaults=defaults)
        if isinstance(spec, dict):
            errors.update(spec)
            continue
        expected = raw.get("sha256") if isinstance(raw, dict) else None
        if expected is not None and str(expected).lower() != uploaded.sha256:
            errors[prefix + "sha256"] = "the uploaded bytes have another SHA-256"
            continue
        ref = uploaded.ref
        if ref is None:  # only hashed (an idempotent retry): never deposited
            specs.append(DepositSpec(Mode.STORED, Digests(uploaded.sha256), spec.form))
            continue
        digests = Digests(ref.sha256, ref.sha512, ref.sm3)
        specs.append(DepositSpec(Mode.STORED, digests, spec.form, ref.size, spec.tags, ref))
    if errors:
        raise FieldError(errors)
    described = {
        "metadata": dict(body.metadata),
        "files": [[f.name, f.media_type, f.sha256] for f in body.files],
    }
    return specs, described


def check_digests(fields: Mapping[str, Any], where: str = "") -> Digests:
    """SHA-256 required, SHA-512 and SM3 optional, hex of the right length (FieldError)."""
    errors: dict[str, str] = {}
    lengths = {"sha256": 64, "sha512": 128, "sm3": 64}
    values: dict[str, str | None] = {}
    for name, length in lengths.items():
        raw = fields.get(name)
        if raw is None:
            if name == "sha256":
                errors[where + name] = "required"
            values[name] = None
        elif not isinstance(raw, str) or not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", raw):
            errors[where + name] = f"must be {length} hexadecimal digits"
        else:
            values[name] = raw.lower()
    if errors:
        raise FieldError(errors)
    return Digests(values["sha256"] or "", values["sha512"], values["sm3"])


def _upload_item(raw: Any) -> Any:
    """A per-file metadata object with its file_name made metadata-safe."""
    if isinstance(raw, dict) and "file_name" in raw:
        return {**raw, "file_name": file_name(str(raw["file_name"]))}
    return raw


STATEMENT_REQUIRED = (
    "required: the applicant's statement (申请人声明), printed on the certificate, e.g. "
    '"I created this work and deposit it to prove it existed at this time"'
)


def _form_fields(source: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k in FORM_FIELDS or k in TIME_FIELDS}


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise FieldError({where + "tags": "a list of strings"})
    try:
        return check_tags(value)
    except InvalidInput as exc:
        raise FieldError({where + "tags": str(exc)}) from None


def _spec(
    shared: Mapping[str, Any],
    raw: Any,
    prefix: str,
    mode: Mode,
    *,
    hash_fields: bool,
    defaults: Mapping[str, str] | None = None,
) -> DepositSpec | dict[str, str]:
    """One item's spec, or its field errors."""
    if not isinstance(raw, dict):
        return {prefix.rstrip("."): "must be an object"}
    errors: dict[str, str] = {}
    allowed = (_ITEM_FIELDS | FORM_FIELDS) if hash_fields else _UPLOAD_ITEM_FIELDS
    for name in raw:
        if name not in allowed and name not in TIME_FIELDS:
            errors[prefix + name] = unknown_field(name, allowed, raw)
    form_fields = {**_form_fields(shared), **(defaults or {}), **_form_fields(raw)}
    for name in ("file_name", "media_type"):
        if name in raw:
            form_fields[name] = raw[name]
    form = digests = tags = None
    try:
        form = parse_deposit_form(form_fields)
    except FieldError as exc:
        errors.update({prefix + k: v for k, v in exc.fields.items()})
    if not (form.statement if form is not None else form_fields.get("statement")):
        errors.setdefault(prefix + "statement", STATEMENT_REQUIRED)
    size = None
    if hash_fields:
        try:
            digests = check_digests(raw, prefix)
        except FieldError as exc:
            errors.update(exc.fields)
        size = raw.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            errors[prefix + "size"] = "a non-negative integer (bytes)"
    try:
        tags = _tags(raw["tags"] if "tags" in raw else shared.get("tags"), prefix)
    except FieldError as exc:
        errors.update(exc.fields)
    if errors:
        return errors
    assert form is not None and tags is not None
    if digests is None:
        digests = Digests("0" * 64)  # replaced by the stored original's digests
    return DepositSpec(mode, digests, form, size, tags)
