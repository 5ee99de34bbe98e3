"""The served OpenAPI document against a snapshot taken before its schemas were
declared as models (tests/web/snapshots/openapi.json, the document of commit b9fe96d):
the same paths, methods, parameters, request bodies and response schemas.

Both documents are reduced to what a client relies on: references resolved; titles,
descriptions and examples dropped; a nullable union written either way
(`{"type": ["string", "null"]}` or `anyOf` with `{"type": "null"}`) compares equal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"
_PROSE = {"title", "description", "summary", "examples", "example", "default"}


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


def test_served_document_is_the_snapshot(served: dict[str, Any]) -> None:
    expected = shape(json.loads(SNAPSHOT.read_text()))
    actual = shape(served)
    assert sorted(actual["operations"]) == sorted(expected["operations"])
    for name, operation in expected["operations"].items():
        assert actual["operations"][name] == operation, name
    assert actual["security"] == expected["security"]


def test_shape_sees_a_changed_schema(served: dict[str, Any]) -> None:
    """The comparison is not blind: a dropped required field or a changed bound differs."""
    changed = json.loads(json.dumps(served))
    body = changed["paths"]["/api/v1/names/applications"]["post"]["requestBody"]
    body["content"]["application/json"]["schema"].setdefault("required", []).append("extra")
    assert shape(changed) != shape(served)
