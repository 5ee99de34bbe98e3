"""The served OpenAPI document against a snapshot taken before its schemas were
declared as models (tests/web/snapshots/openapi.json, the document of commit b9fe96d):
the same paths, methods, parameters, request bodies and response schemas.

Both documents are reduced to what a client relies on: references resolved; titles,
descriptions and examples dropped; a nullable union written either way
(`{"type": ["string", "null"]}` or `anyOf` with `{"type": "null"}`) compares equal.
The served document may say more than the snapshot where the handlers always enforced
it: a bound or pattern the snapshot left out (`_REFINEMENTS`), or that an optional
field may also be given as null. Everything else must be equal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"
_PROSE = {"title", "description", "summary", "examples", "example", "default"}
#: Keywords the served document may add to a snapshot schema: they document a check
#: the handler made all along; they cannot add, drop or retype a field.
_REFINEMENTS = {
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "additionalProperties",  # false: unknown fields refused, as the handlers always did
}


def _resolve(schema: Any, document: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(schema, list):
        return [_resolve(item, document, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if ref is not None:
        if ref in seen:  # a recursive schema: compare the reference's name only
            return {"$recursive": ref.rsplit("/", 1)[-1]}
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return _resolve(target, document, (*seen, ref))
    return {k: _resolve(v, document, seen) for k, v in schema.items() if k not in _PROSE}


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _canonical(schema: Any) -> Any:
    """One spelling per meaning, after _resolve."""
    if isinstance(schema, list):
        return [_canonical(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: _canonical(v) for k, v in schema.items()}
    for union in ("anyOf", "oneOf"):
        options = schema.get(union)
        if options and any(o == {"type": "null"} for o in options):
            rest = [o for o in options if o != {"type": "null"}]
            merged = dict(rest[0]) if len(rest) == 1 else {union: rest}
            merged["type"] = sorted(_types(merged) | {"null"}) if _types(merged) else None
            if merged["type"] is None:
                merged.pop("type")
                merged["nullable"] = True
            schema = {**{k: v for k, v in schema.items() if k != union}, **merged}
    if isinstance(schema.get("type"), list):
        schema["type"] = sorted(schema["type"])
        if len(schema["type"]) == 1:
            schema["type"] = schema["type"][0]
    if isinstance(schema.get("required"), list):  # an object's; a body's is a bool
        schema["required"] = sorted(schema["required"])
    if "enum" in schema:
        schema["enum"] = sorted(schema["enum"], key=json.dumps)
    return schema


def shape(document: dict[str, Any]) -> dict[str, Any]:
    """What a client relies on, per operation."""
    operations: dict[str, Any] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            parameters = sorted(
                (
                    p["name"],
                    p["in"],
                    bool(p.get("required")),
                    json.dumps(_canonical(_resolve(p.get("schema"), document)), sort_keys=True),
                )
                for p in _resolve(operation.get("parameters", []), document)
            )
            body = _canonical(_resolve(operation.get("requestBody"), document))
            responses = _canonical(_resolve(operation.get("responses", {}), document))
            operations[f"{method.upper()} {path}"] = {
                "parameters": parameters,
                "body": body,
                "responses": responses,
                "security": operation.get("security"),
            }
    return {"operations": operations, "security": document["components"]["securitySchemes"]}


@pytest.fixture
def served(make_server) -> dict[str, Any]:
    server = make_server()
    server.start()
    status, _, body = server.get("/api/v1/openapi.json")
    assert status == 200
    return json.loads(body)


def covers(actual: Any, expected: Any, where: str = "") -> list[str]:
    """Where `actual` says something other than `expected` (beyond the allowed refinements)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in expected.keys() | actual.keys():
            here = f"{where}/{key}"
            if key not in expected:
                if key not in _REFINEMENTS:
                    found.append(f"{here}: added")
            elif key not in actual:
                found.append(f"{here}: missing")
            elif key == "type" and _nullable_of(actual[key]) == expected[key]:
                continue
            else:
                found += covers(actual[key], expected[key], here)
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [f for a, e in zip(actual, expected, strict=True) for f in covers(a, e, where)]
    return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]


def _nullable_of(kind: Any) -> Any:
    """`kind` without the null an optional field may be given as."""
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        return rest[0] if len(rest) == 1 else rest
    return kind


def test_served_document_is_the_snapshot(served: dict[str, Any]) -> None:
    expected = shape(json.loads(SNAPSHOT.read_text()))
    actual = shape(served)
    assert sorted(actual["operations"]) == sorted(expected["operations"])
    for name, operation in expected["operations"].items():
        assert covers(actual["operations"][name], operation) == [], name
    assert actual["security"] == expected["security"]


def test_shape_sees_a_changed_schema(served: dict[str, Any]) -> None:
    """The comparison is not blind: a dropped required field or a changed bound differs."""
    changed = json.loads(json.dumps(served))
    body = changed["paths"]["/api/v1/names/applications"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    schema.setdefault("required", []).append("extra")
    changed_shape, served_shape = shape(changed), shape(served)
    name = "POST /api/v1/names/applications"
    assert covers(changed_shape["operations"][name], served_shape["operations"][name])
    assert covers(served_shape["operations"][name], changed_shape["operations"][name])
