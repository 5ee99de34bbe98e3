"""A deposit request as one use case, without HTTP: the Idempotency-Key's replay, reuse
and release, certification, the dispatcher's wake-up, and the fields of a hash-only
request turned into specs with their refusals named by path."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from tests.evidence.test_service import World
from tests.evidence.test_service import world as world  # noqa: F401 (the fixture)
from tsa_server.evidence.deposit_forms import hash_only_specs
from tsa_server.evidence.deposit_requests import DepositCommand, DepositRequests
from tsa_server.evidence.idempotency import KeyReused, fingerprint
from tsa_server.fees import FieldError, InsufficientCredits

SHA = hashlib.sha256(b"evidence").hexdigest()
BODY = {"sha256": SHA, "depositor": "张三", "work_content": "photos", "statement": "ours"}


def command(org: str, body: dict = BODY, key: str | None = None) -> DepositCommand:
    return DepositCommand(org, hash_only_specs(body, 10), fingerprint(body), key)


def test_a_deposit_is_certified_and_wakes_the_dispatcher(world: World) -> None:
    org = world.org(units=2)
    woken: list[bool] = []
    requests = DepositRequests(world.service, wake=lambda: woken.append(True))
    answer = asyncio.run(requests.submit(command(org)))
    body = json.loads(answer.body)
    assert answer.status == 201 and not answer.replayed and answer.retry_after is None
    assert [item["sha256"] for item in body["items"]] == [SHA]
    assert body["failed"] == [] and body["balance"] == 1
    assert woken == [True]


def test_the_same_key_replays_the_first_answer_and_refuses_another_request(
    world: World,
) -> None:
    org = world.org(units=5)
    requests = DepositRequests(world.service)
    first = asyncio.run(requests.submit(command(org, key="k1")))
    entries = world.kinds(org)
    again = asyncio.run(requests.submit(command(org, key="k1")))
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    assert world.kinds(org) == entries  # no second reservation or token
    other = {**BODY, "statement": "another request"}
    with pytest.raises(KeyReused):
        asyncio.run(requests.submit(command(org, other, key="k1")))
    kept = asyncio.run(requests.answered(org, "k1"))
    assert kept is not None and requests.replay(kept, fingerprint(BODY)).body == first.body
    with pytest.raises(KeyReused):
        requests.replay(kept, fingerprint(other))


def test_a_refused_deposit_releases_its_key(world: World) -> None:
    org = world.org(units=0)
    requests = DepositRequests(world.service)
    with pytest.raises(InsufficientCredits):
        asyncio.run(requests.submit(command(org, key="k2")))
    assert asyncio.run(requests.answered(org, "k2")) is None  # a retry runs again
    world.service.grant_lot(org, 1, "later")
    assert asyncio.run(requests.submit(command(org, key="k2"))).status == 201


def test_hash_only_fields_are_refused_by_path() -> None:
    with pytest.raises(FieldError) as info:
        hash_only_specs({**BODY, "colour": "red"}, 10)
    assert info.value.fields == {"colour": "unknown field"}
    with pytest.raises(FieldError) as info:  # a near miss names the field meant
        hash_only_specs({**BODY, "filename": "a.txt"}, 10)
    assert info.value.fields == {"filename": "unknown field (did you mean file_name?)"}
    batch = {
        "depositor": "张三",
        "work_content": "photos",
        "statement": "ours",
        "items": [{"sha256": SHA}, {}],
    }
    with pytest.raises(FieldError) as info:
        hash_only_specs(batch, 10)
    assert info.value.fields == {"items[1].sha256": "required"}
    with pytest.raises(FieldError) as info:
        hash_only_specs({**batch, "items": [{"sha256": SHA}] * 3}, 2)
    assert info.value.fields == {"items": "at most 2 per request"}
    assert [s.digests.sha256 for s in hash_only_specs(BODY, 1)] == [SHA]


def test_the_applicants_statement_is_required() -> None:
    """Issue 19: the certificate prints the statement, so a new deposit must give one (in
    the request or in each item); the refusal says what to write."""
    unstated = {k: v for k, v in BODY.items() if k != "statement"}
    for body in (unstated, {**unstated, "statement": "   "}):
        with pytest.raises(FieldError) as info:
            hash_only_specs(body, 10)
        assert set(info.value.fields) == {"statement"}
        assert "申请人声明" in info.value.fields["statement"]
    shared = {k: v for k, v in unstated.items() if k != "sha256"}
    batch = {**shared, "items": [{"sha256": SHA, "statement": "this one is ours"}]}
    assert hash_only_specs(batch, 10)[0].form.statement == "this one is ours"
