"""A deposit request as one use case: the Idempotency-Key (claim, replay, keep or
release the answer), certification through the service (reserve, time-stamp, refund of
what could not be certified) and the wake-up of the webhook dispatcher for the new
notices. The HTTP handlers build a `DepositCommand` and write the `DepositAnswer`; the
answer's body is JSON text, kept verbatim for replays.

A key's first request runs; a retry of the same request (same fingerprint) gets the
first 201 again, marked replayed; the key with another request is KeyReused (422);
while the first runs, InProgress (409). Only a 201 is kept: anything else releases the
key, so a retry runs again.

A deposit of a SHA-256 the organisation already had certified is allowed (a new
statement may matter) and says so: each item of the answer lists the earlier ones in
`already_certified` (id, serial, genTime), as its certificate's history section does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tsa_server.clock.beijing import utc_text
from tsa_server.evidence.certificate import earlier_items
from tsa_server.evidence.deposits import DepositResult, DepositSpec
from tsa_server.evidence.idempotency import HEADER, KeyReused, Replay
from tsa_server.evidence.records import Item
from tsa_server.evidence.service import EvidenceService
from tsa_server.evidence.uploads import UploadSession


@dataclass(frozen=True)
class DepositCommand:
    """Certify `specs` for `org_id`; `request_sha256` fingerprints the request for its
    `idempotency_key`; `uploads` holds a stored deposit's staged originals."""

    org_id: str
    specs: Sequence[DepositSpec]
    request_sha256: str
    idempotency_key: str | None = None
    uploads: UploadSession | None = None


@dataclass(frozen=True)
class DepositAnswer:
    """Status and JSON text of the answer; `replayed`: a kept answer given again;
    `retry_after`: seconds, when nothing could be certified (503)."""

    status: int
    body: str
    replayed: bool = False
    retry_after: int | None = None


def _replayed(replay: Replay) -> DepositAnswer:
    return DepositAnswer(replay.status, replay.body, replayed=True)


class DepositRequests:
    """Deposit requests over one service; `wake` tells the webhook dispatcher that new
    notices (item.certified) wait."""

    def __init__(self, service: EvidenceService, wake: Callable[[], None] = lambda: None) -> None:
        self.service = service
        self.wake = wake

    async def answered(self, org_id: str, key: str | None) -> Replay | None:
        """The kept answer of `key` (InProgress while its first request runs), before an
        upload's files are read: a retry's files are then only hashed, never stored."""
        if key is None:
            return None
        service = self.service
        return await service.off_loop(service.idempotency.answered, org_id, key)

    @staticmethod
    def replay(answered: Replay, request_sha256: str) -> DepositAnswer:
        """The kept answer for the retry of an answered upload (KeyReused when the
        retry is another request)."""
        if answered.request_sha256 != request_sha256:
            raise KeyReused(f"this {HEADER} was used for a different request")
        return _replayed(answered)

    async def submit(self, command: DepositCommand) -> DepositAnswer:
        """Certify the deposit, or with an Idempotency-Key replay the first 201 answer."""
        key, org, service = command.idempotency_key, command.org_id, self.service
        if key is None:
            return await self._certify(command)
        keys = service.idempotency
        replay = await service.off_loop(keys.claim, org, key, command.request_sha256)
        if replay is not None:
            return _replayed(replay)
        finished = False
        try:
            answer = await self._certify(command)
            if answer.status == 201:
                await service.off_loop(keys.finish, org, key, answer.status, answer.body)
                finished = True
            return answer
        finally:
            if not finished:  # refused or failed: nothing certified, a retry runs again
                await service.off_loop(keys.release, org, key)

    async def _certify(self, command: DepositCommand) -> DepositAnswer:
        service, org = self.service, command.org_id
        result = await service.deposit(org, command.specs, uploads=command.uploads)
        body = await service.off_loop(self._body, org, result)
        if not result.items:
            body["error"] = "no item could be certified; every unit was refunded"
            return DepositAnswer(503, json.dumps(body), retry_after=5)
        self.wake()  # item.certified notices: deliver them now
        return DepositAnswer(201, json.dumps(body))

    def _body(self, org: str, result: DepositResult) -> dict[str, Any]:
        service = self.service
        items = views(service, org, result.items)
        for view, item in zip(items, result.items, strict=True):
            earlier = earlier_items(item, service.store.items_by_sha256(org, item.sha256))
            view["already_certified"] = [
                {"id": e.item_id, "serial": e.serial_hex, "certified_at": utc_text(e.gen_time)}
                for e in earlier
            ]
        return {
            "batch": result.batch,
            "items": items,
            "failed": [
                {"index": f.index, "sha256": f.sha256, "error": f.reason, "refunded": True}
                for f in result.failures
            ],
            "balance": service.balance(org),
        }


def views(service: EvidenceService, org: str, items: Sequence[Item]) -> list[dict[str, Any]]:
    return [service.view(org, item) for item in items]
