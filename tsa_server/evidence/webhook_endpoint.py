"""Setting and removing an organisation's REC-10 webhook endpoint: the use case of the
organisation page (web/pages/organisation_keys.py), made of the very steps ``PUT
/api/v1/webhook`` takes (web/evidence/webhook.py): the URL's and events' rules
(`webhooks.check_webhook`), the address fence (`webhook_fence.check_target`: public
addresses only, https unless allowed), a new signing secret, shown once by the caller.

The store's writes run in the evidence service's worker threads, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tsa_server.evidence.service import EvidenceService
from tsa_server.evidence.webhook_fence import check_target
from tsa_server.evidence.webhooks import (
    WebhookSettings,
    check_webhook,
    new_secret,
    webhook_json,
)


@dataclass(frozen=True)
class SetWebhook:
    """The webhook as GET /api/v1/webhook shows it, its new secret (show it once, then
    drop it), and whether it was made now (False: replaced)."""

    webhook: dict[str, Any]
    secret: str
    created: bool

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"SetWebhook(webhook={self.webhook!r}, created={self.created})"


async def set_webhook(
    service: EvidenceService,
    settings: WebhookSettings,
    org_id: str,
    url: Any,
    events: Any = None,
) -> SetWebhook:
    """Check `url` and `events` (FieldError naming the field and the rule) and set them
    with a new secret."""
    url, checked = check_webhook(url, events)
    await check_target(url, settings.policy(), timeout_s=settings.timeout_s)
    secret = new_secret()
    kinds = None if checked is None else " ".join(checked)
    created = await service.off_loop(
        service.store.put_webhook, org_id, url, kinds, secret, service.now()
    )
    row = await service.off_loop(service.store.webhook, org_id)
    assert row is not None
    return SetWebhook(webhook_json(row), secret, created)


async def webhook(service: EvidenceService, org_id: str) -> dict[str, Any] | None:
    row = await service.off_loop(service.store.webhook, org_id)
    return None if row is None else webhook_json(row)


async def remove_webhook(service: EvidenceService, org_id: str) -> bool:
    """Remove it (False: none was set); undelivered notices are not sent."""
    return await service.off_loop(service.store.delete_webhook, org_id)
