"""Request and response shapes of the JSON API, declared once.

Each request body (and query string) is a pydantic model: it validates what a client
sends (unknown fields refused, types and bounds checked) and its JSON Schema is the one
the OpenAPI document serves. Each endpoint is an `Operation` declared beside its handler;
web/openapi.py assembles the document from the operations, when it is first asked for.

pydantic v2 rather than msgspec: both validate fast enough for bodies of a few KiB, but
pydantic's JSON Schema output (OpenAPI 3.1 is JSON Schema 2020-12) is the one the field
generates its documents with (FastAPI, Litestar), so the schemas need no hand-written
bridge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from tsa_server.fees.errors import unknown_field
from tsa_server.web.bodies import read_json_object
from tsa_server.web.errors import BadRequest

#: The security requirement of every authenticated operation.
API_KEY: list[dict[str, list[str]]] = [{"apiKey": []}]
REF = "#/components/schemas/{model}"

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """A request body or query: closed (an unknown field is an error), strict (no
    string-to-number coercion: a client's type mistake is reported, not guessed at)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class InvalidBody(BadRequest):
    """A body or query that does not fit its model: `problems` maps each offending field
    (dotted path) to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str], status: int = 400) -> None:
        self.problems = dict(problems)
        unknown = sorted(k for k, v in self.problems.items() if v.startswith(UNKNOWN))
        if unknown and len(unknown) == len(self.problems):
            named = (k + self.problems[k][len(UNKNOWN) :] for k in unknown)
            reason = f"unknown field(s): {', '.join(named)}"
        else:
            reason = "; ".join(f"{k}: {v}" for k, v in self.problems.items())
        super().__init__(status, reason)


UNKNOWN = "unknown field"


def _unknown(loc: tuple[int | str, ...], model: type[BaseModel] | None, value: Any) -> str:
    """ "unknown field", naming the closest field of `model` for a top-level name."""
    if model is None or len(loc) != 1 or not isinstance(value, Mapping):
        return UNKNOWN
    known = [field.alias or name for name, field in model.model_fields.items()]
    return unknown_field(str(loc[0]), known, value)


def problems_of(
    exc: ValidationError, model: type[BaseModel] | None = None, value: Any = None
) -> dict[str, str]:
    """Field path -> a short message, from pydantic's errors (an unknown field of
    `model`, validating `value`, names the closest known one)."""
    found: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        unknown = error["type"] == "extra_forbidden"
        found.setdefault(where, _unknown(error["loc"], model, value) if unknown else error["msg"])
    return found


def validate(model: type[M], value: Any) -> M:
    """`value` (decoded JSON or a query's mapping) as `model`; InvalidBody if it does not fit."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidBody(problems_of(exc, model, value)) from None


async def read_body(request: web.Request, model: type[M], limit: int | None = None) -> M:
    """The request's JSON object body as `model` (415, 413, 400 as read_json_object)."""
    raw = await (read_json_object(request) if limit is None else read_json_object(request, limit))
    return validate(model, raw)


def query_of(request: web.Request, model: type[M]) -> M:
    """The query string as `model`: each parameter at most once, unknown ones refused."""
    names = list(request.query.keys())
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidBody({name: "given more than once" for name in repeated})
    return validate(model, dict(request.query))


# ----------------------------------------------------------------- the OpenAPI side


def schema_of(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
    """The model's JSON Schema with its nested models as component references; the
    nested definitions are collected by `components`."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    schema.pop("$defs", None)
    return schema


def components(models: Sequence[type[BaseModel]]) -> dict[str, Any]:
    """Component schemas of `models` and of every model nested in them."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def json_response(schema: Mapping[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter."""

    name: str
    where: str  # "path", "query" or "header"
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "schema": dict(self.schema),
        }


def query_params(model: type[BaseModel]) -> tuple[Param, ...]:
    """The query parameters a query model declares."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    return tuple(
        Param(name, "query", _plain(prop), name in required)
        for name, prop in schema["properties"].items()
    )


def _plain(prop: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k not in ("title", "default")}


@dataclass(frozen=True)
class Operation:
    """One endpoint as the OpenAPI document describes it."""

    method: str
    path: str
    summary: str
    responses: Mapping[str, Any]
    body: type[BaseModel] | Mapping[str, Any] | None = None  # a model or a raw requestBody
    params: tuple[Param, ...] = ()
    security: bool = True
    description: str | None = None

    def document(self) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": self.summary}
        if self.description:
            op["description"] = self.description
        if self.params:
            op["parameters"] = [p.document() for p in self.params]
        if self.security:
            op["security"] = API_KEY
        if isinstance(self.body, type):
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(self.body.__name__)}},
            }
        elif self.body is not None:
            op["requestBody"] = dict(self.body)
        op["responses"] = dict(self.responses)
        return op


def body_models(operations: Sequence[Operation]) -> list[type[BaseModel]]:
    return [op.body for op in operations if isinstance(op.body, type)]


@dataclass(frozen=True)
class Described:
    """What one area of the API contributes to the OpenAPI document: its operations,
    the component schemas they name (beyond their body models') and any paths still
    written as literal OpenAPI."""

    operations: tuple[Operation, ...] = ()
    schemas: Mapping[str, Any] = field(default_factory=dict)
    paths: Mapping[str, Any] = field(default_factory=dict)


_STR = {"type": "string"}
#: The error bodies every area answers with (web/errors.py).
COMMON_SCHEMAS: Mapping[str, Any] = {
    "Error": {"type": "object", "properties": {"error": _STR}, "required": ["error"]},
    "Refusal": {
        "type": "object",
        "properties": {
            "error": _STR,
            "reason": _STR,
            "detail": _STR,
            "field": {"type": ["string", "null"]},
        },
        "required": ["error"],
    },
}
