"""The request bodies and query of the trade-name endpoints (web/names/registry.py), declared
once: each model validates what a client sends (unknown fields refused, types strict,
texts at most MAX_TEXT characters) and is the schema the OpenAPI document serves. Each
turns into the registry's command (tsa_server/names/commands.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from tsa_server.names import MarkKind
from tsa_server.names.commands import (
    MAX_TEXT,
    ApplyCommand,
    ComplaintCommand,
    DecisionCommand,
    MarkClaim,
    ProofClaim,
)
from tsa_server.web.api import Body

Text = Annotated[str, Field(max_length=MAX_TEXT)]


def _enum(*values: Any, description: str | None = None) -> WithJsonSchema:
    """An enumeration as the document has always spelled it: values only, no type."""
    schema: dict[str, Any] = {"enum": list(values)}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


def _no_additional_properties(schema: dict[str, Any]) -> None:
    # Unknown mark and proof fields are refused all the same; the document never said
    # so, and tests/web/test_openapi.py admits only bounds beyond it.
    schema.pop("additionalProperties", None)


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("group must be 1 (brand, with mark and proof) or 2 (public)")
    return value


class NameMark(Body):
    """A mark as claimed by a brand applicant (H-14) or a complainant (H-13)."""

    model_config = ConfigDict(json_schema_extra=_no_additional_properties)

    kind: Annotated[
        Literal["R", "TM"],
        _enum("R", "TM", description="R: registered; TM: applied for (not enough for H-13)"),
    ]
    text: Text | None = Field(None, description="default: the handle")
    filed_at: Annotated[str, Field(max_length=40, description="ISO 8601; Beijing if naive")]
    registration_number: Text

    def claim(self) -> MarkClaim:
        return MarkClaim(MarkKind(self.kind), self.filed_at, self.registration_number, self.text)


class NameProof(Body):
    """The proof document: an evidence item of the caller's organisation, by id and/or
    content SHA-256."""

    model_config = ConfigDict(json_schema_extra=_no_additional_properties)

    item_id: Text | None = None
    sha256: Text | None = None

    def claim(self) -> ProofClaim:
        return ProofClaim(self.item_id, self.sha256)


class NameApplication(Body):
    """POST /api/v1/names/applications."""

    handle: Text
    shop_name: Text
    group: Annotated[
        Literal[1, 2],
        BeforeValidator(_not_bool),
        _enum(
            1,
            2,
            description="1: brand holder (H-14), with mark and proof; pending until an "
            "operator certifies it (202). 2 (default): public",
        ),
    ] = 2
    mark: NameMark | None = None
    proof: NameProof | None = None

    def command(self) -> ApplyCommand:
        return ApplyCommand(
            self.handle,
            self.shop_name,
            self.group,
            self.mark.claim() if self.mark else None,
            self.proof.claim() if self.proof else None,
            claims_brand=bool({"mark", "proof"} & self.model_fields_set),
        )


class NameChange(Body):
    """POST /api/v1/names/{handle}/change: a new handle and/or custom part."""

    handle: Text | None = None
    custom: Text | None = None


class NameRelease(Body):
    """POST /api/v1/names/{handle}/release (shop_deleted and penalty: operators only)."""

    cause: Annotated[
        Literal["withdrawn", "shop_deleted", "penalty"] | None,
        _enum("withdrawn", "shop_deleted", "penalty"),
    ] = None


class NameReclaim(Body):
    """POST /api/v1/names/{handle}/reclaim (default shop name: the handle)."""

    shop_name: Text | None = None


class NameObjection(Body):
    """POST /api/v1/names/{handle}/objections."""

    statement: Text | None = None


class NameComplaint(Body):
    """POST /api/v1/names/{handle}/complaints (H-13)."""

    shop_name: Text = Field(description="the name the handle will head")
    mark: NameMark
    proof: NameProof
    statement: Text | None = None

    def command(self) -> ComplaintCommand:
        return ComplaintCommand(
            self.shop_name, self.mark.claim(), self.proof.claim(), self.statement or ""
        )


class NameDecision(Body):
    """POST /api/v1/names/{handle}/decision (operators)."""

    brand: Text | None = Field(None, description="the Group-1 applicant's shop id")
    complaint: Text | None = Field(None, description="the complainant's shop id (H-13)")
    verdict: Annotated[
        Literal["certify", "reject", "uphold", "dismiss"] | None,
        _enum("certify", "reject", "uphold", "dismiss"),
    ] = None
    winner: Text | None = None
    note: Text | None = None
    # {shop id: {metric: value}}, checked by the registry (names/disputes.py)
    metrics: Annotated[Any, WithJsonSchema({"type": "object"})] = None
    outcome: Annotated[Literal["release", "retain"] | None, _enum("release", "retain")] = None

    def command(self) -> DecisionCommand:
        return DecisionCommand(
            self.winner,
            self.note or "",
            self.metrics,
            self.outcome,
            self.brand,
            self.verdict,
            self.complaint,
        )


class CheckQuery(Body):
    """GET /api/v1/names/check (bounds: names/operations.check)."""

    handle: str
    shop_name: str = ""
