"""Apply for a timestamp (申请认证), hash-only (脱敏认证): the files are hashed in the
browser (static/apply.js with the vendored js-sha256) and only their digests, sizes and
names are sent.

``GET  /apply``         the form: files or a folder, depositor, work content, the
                        applicant's statement
``POST /apply/review``  the digests and the form -> the review page: the credits the
                        batch uses against the balance, and each file this organisation
                        already had certified (the items store, by SHA-256)
``POST /apply``         confirmed -> the deposit use case of POST /api/v1/deposits
                        (evidence/deposit_requests.py `DepositRequests.submit`, with an
                        Idempotency-Key made at review, so a second click replays), then
                        each item's result

Every field is checked by the API's own reader (evidence/deposit_forms.py
`hash_only_specs`): this module only turns the page's form into the API's body.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from tsa_server.accounts.errors import PermissionDenied
from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.people import Person
from tsa_server.evidence.deposit_forms import hash_only_specs
from tsa_server.evidence.deposit_requests import DepositCommand
from tsa_server.evidence.idempotency import check_key, fingerprint
from tsa_server.evidence.service import EvidenceService
from tsa_server.fees import FieldError, InsufficientCredits
from tsa_server.web.errors import BadRequest
from tsa_server.web.evidence.context import deposits_of, service_of
from tsa_server.web.evidence.deposits import MAX_DEPOSIT_JSON
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import check_csrf, signed_in

#: The form's text fields that become the API body's shared metadata.
SHARED = ("depositor", "work_content", "work_title", "statement")


def _may_deposit(person: Person) -> None:
    principal = person.principal
    if not (principal.has(Scope.DEPOSIT) or principal.has(Scope.TIMESTAMP)):
        raise PermissionDenied("your role may not deposit", "deposit")


async def page_form(request: web.Request) -> dict[str, str]:
    """The urlencoded form (CSRF checked first)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest(415, "send the page's form")
    if (request.content_length or 0) > MAX_DEPOSIT_JSON:
        raise BadRequest(413, "the form is too large: send fewer files at once")
    fields = await request.post()
    values = {k: v for k, v in fields.items() if isinstance(v, str)}
    check_csrf(request, values.get("csrf"))
    return values


def _body(values: dict[str, str]) -> dict[str, Any]:
    """The API's hash-only batch body from the form (the digests the browser sent)."""
    try:
        items = json.loads(values.get("items") or "[]")
    except ValueError:
        raise BadRequest(400, "the list of files is not readable: choose the files again") from None
    body: dict[str, Any] = {"items": items}
    for name in SHARED:
        text = values.get(name, "").strip()
        if text or name != "work_title":
            body[name] = text
    return body


def earlier_items(service: EvidenceService, org: str, body: dict[str, Any]) -> list[list[Any]]:
    """For each item, this organisation's earlier items with its SHA-256."""
    found = []
    for raw in body["items"]:
        earlier = service.store.items_by_sha256(org, str(raw["sha256"]).lower())
        found.append([{"id": e.id, "certified_at": e.certified_at} for e in earlier[:5]])
    return found


@page
@signed_in
async def apply_form(request: web.Request, person: Person) -> web.StreamResponse:
    _may_deposit(person)
    service = service_of(request)
    balance = await service.off_loop(service.balance, person.member.org_id)
    context = {"balance": balance, "max_items": service.settings.max_batch_items}
    return render(request, "apply.html", context)


def _field_errors(request: web.Request, exc: FieldError) -> web.Response:
    return render(request, "apply_errors.html", {"fields": exc.fields}, status=422)


@page
@signed_in
async def review(request: web.Request, person: Person) -> web.StreamResponse:
    _may_deposit(person)
    service = service_of(request)
    org = person.member.org_id
    values = await page_form(request)
    body = _body(values)
    try:
        specs = hash_only_specs(body, service.settings.max_batch_items)
    except FieldError as exc:
        return _field_errors(request, exc)
    earlier = await service.off_loop(earlier_items, service, org, body)
    balance = await service.off_loop(service.balance, org)
    context = {
        "body": body,
        "items": list(zip(body["items"], earlier, strict=True)),
        "units": len(specs),
        "balance": balance,
        "enough": balance >= len(specs),
        "items_json": json.dumps(body["items"], ensure_ascii=False),
        "key": "page-" + secrets.token_urlsafe(18),
        "repeated": sum(1 for e in earlier if e),
    }
    return render(request, "apply_review.html", context)


@page
@signed_in
async def confirm(request: web.Request, person: Person) -> web.StreamResponse:
    _may_deposit(person)
    service = service_of(request)
    org = person.member.org_id
    values = await page_form(request)
    body = _body(values)
    key = check_key(values.get("key", ""))
    try:
        specs = hash_only_specs(body, service.settings.max_batch_items)
    except FieldError as exc:
        return _field_errors(request, exc)
    command = DepositCommand(org, specs, fingerprint(body), key)
    try:
        answer = await deposits_of(request).submit(command)
    except InsufficientCredits as exc:
        lang = language(request)
        message = translate(
            lang,
            "Not enough credits: this batch needs %(needed)s, your usable balance is "
            "%(available)s. Nothing was debited. Top up your wallet, or send fewer files.",
        ) % {"needed": exc.needed, "available": exc.available}
        context = {"status": 402, "message": message}
        return render(request, "error.html", context, status=402)
    result = json.loads(answer.body)
    return render(request, "apply_result.html", {"result": result}, status=answer.status)
