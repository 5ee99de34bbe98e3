"""The building blocks of the OpenAPI 3.1 document, shared by every module that
describes its endpoints (web/openapi.py assembles them; web/evidence/__init__.py and
web/evidence/files.py describe theirs next to their handlers)."""

from __future__ import annotations

from typing import Any

#: The security requirement of every authenticated operation.
API_KEY: list[dict[str, list[str]]] = [{"apiKey": []}]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def object_schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed JSON object: unknown properties are refused, as the handlers do."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def query_param(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}
