"""The issuer's signing keys: the active one, a successor staged for an instant, and the
retired ones still finishing their batches.

The switching rule: a batch whose genTime is at or after the successor's activation
instant is signed by the successor; every batch sequenced before is signed (and its
token assembled) by the key it was sequenced with, whose certificate it carries. The
switch happens on the event loop, where batches are sequenced, so it falls between two
batches; a retired key is handed to `on_drained` (which closes its worker pool) once
its last batch is signed. A key also retires by itself: no token with a genTime at or
after the end of its usage period or its certificate's expiry (EN 319 421
TIS-7.7.1-09), and warnings ahead of that unless a successor activates before it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asn1crypto import x509 as asn1_x509

from tsa_server.errors import SignerUnavailable, TSAError
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.signing.base import Signer
from tsa_server.signing.certs import to_pem
from tsa_server.signing.pool import BatchSigner
from tsa_server.signing.schedule import Retirement, text_of

log = logging.getLogger("tsa.keys")


@dataclass(eq=False)
class SigningKey:
    """One key with everything a token signed by it needs."""

    label: str
    signer: Signer  # in this process: small batches and nothing else in flight
    batch_signer: BatchSigner
    template: TokenTemplate
    chain: tuple[asn1_x509.Certificate, ...] = ()
    retirement: Retirement | None = None
    batches: int = 0  # sequenced with this key and not yet signed
    close_with_issuer: bool = False  # built by the rotation: closed by it, not by wiring
    inline: bool = True  # this process's own session signs small batches when idle

    async def sign_small(self, messages: list[bytes], digests: list[str]) -> list[bytes]:
        """A few messages on this process's own session, cheaper than a worker's round
        trip when nothing else is in flight. Should that session fail, the workers, with
        sessions of their own, sign this batch and every later one of this key: no
        request fails for it. (The GeneralError once seen here after a key rotation was
        two threads inside SoftHSM at once: signing/pkcs11.py TOKEN_LOCK.)"""
        if self.inline:
            try:
                return self.signer.sign_many(messages, digests)
            except SignerUnavailable as exc:
                self.inline = False
                log.warning(
                    "key %r: in-process signing failed (%s); its workers sign", self.label, exc
                )
        return await self.batch_signer.sign_batch(messages, digests)

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.chain[0].dump()).hexdigest() if self.chain else ""

    @property
    def chain_pem(self) -> bytes:
        return b"".join(to_pem(c.dump()) for c in self.chain)

    @property
    def retires_at(self) -> datetime | None:
        return self.retirement.at if self.retirement else None

    def retire(self) -> None:
        """Stop its signing workers. The in-process session stays open until the server
        stops: python-pkcs11 logs out when it closes the session that logged in, and a
        PKCS#11 login belongs to the whole process (every other key would go dark)."""
        self.batch_signer.close()

    def close(self) -> None:
        self.batch_signer.close()
        close = getattr(self.signer, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class Switch:
    """A key activation as the issuer performed it."""

    old: SigningKey
    new: SigningKey
    scheduled_at: datetime
    activated_at: datetime  # the scheduled instant, or later when staged late


@dataclass
class KeyRing:
    current: SigningKey
    warn_ahead: timedelta = timedelta(days=30)
    on_switch: Callable[[Switch], None] | None = None
    on_drained: Callable[[SigningKey], None] | None = None
    successor: tuple[datetime, datetime, SigningKey] | None = None  # scheduled, effective
    trouble: str | None = None  # why the schedule could not be applied (the rotation says)
    _retired: list[SigningKey] = field(default_factory=list)
    # Chains of keys this TSA signed with before this process started (the initial key
    # and the schedule's earlier keys): /verify recognises their tokens as this TSA's.
    earlier: tuple[tuple[asn1_x509.Certificate, ...], ...] = ()

    def stage(self, key: SigningKey, scheduled_at: datetime, now: datetime) -> None:
        """Make `key` active from `scheduled_at`, or from `now` when that has passed
        (`now` rounded up to the millisecond: genTimes are whole milliseconds)."""
        effective = scheduled_at
        if now > scheduled_at:
            extra = now.microsecond % 1000
            effective = now + timedelta(microseconds=(1000 - extra) % 1000)
        replaced = self.unstage()
        if replaced is not None and replaced is not key:
            self._drained(replaced)
        self.successor = (scheduled_at, effective, key)

    def unstage(self) -> SigningKey | None:
        staged, self.successor = self.successor, None
        return staged[2] if staged else None

    def select(self, gen_time: datetime, now: datetime) -> SigningKey:
        """The key that signs a batch with this genTime; TSAError when it retired."""
        self.switch_due(gen_time)
        key = self.current
        retirement = key.retirement
        if retirement is not None and max(gen_time, now) >= retirement.at:
            raise TSAError(retirement.text)
        return key  # the issuer counts the batch in key.batches once it is sequenced

    def switch_due(self, instant: datetime) -> Switch | None:
        """Activate the successor if `instant` is at or after its activation."""
        successor = self.successor
        if successor is None or instant < successor[1]:
            return None
        scheduled, effective, key = successor
        self.successor = None
        old, self.current = self.current, key
        switch = Switch(old, key, scheduled, effective)
        log.warning(
            "signing key %r active from %s (was %r)", key.label, text_of(effective), old.label
        )
        self._retired.append(old)
        if self.on_switch is not None:
            self.on_switch(switch)
        if old.batches == 0:
            self._drained(old)
        return switch

    def signed(self, key: SigningKey) -> None:
        """A batch of `key` is signed: a retired key with none left is handed over."""
        key.batches -= 1
        if key.batches == 0 and key in self._retired:
            self._drained(key)

    def _drained(self, key: SigningKey) -> None:
        if key in self._retired:
            self._retired.remove(key)
        if self.on_drained is not None:
            self.on_drained(key)

    def problem(self, now: datetime) -> str | None:
        """Why no token can be issued now (for /readyz), if the key has retired."""
        retirement = self.current.retirement
        successor = self.successor
        if retirement is None or now < retirement.at:
            return None
        if successor is not None and now >= successor[1]:
            return None  # the next batch switches
        return f"certificate: {retirement.text}"

    def warning(self, now: datetime) -> str | None:
        """A warning while the key's retirement is near and no successor comes first."""
        retirement = self.current.retirement
        if retirement is None or now >= retirement.at or now + self.warn_ahead < retirement.at:
            return None
        if self.successor is not None and self.successor[1] < retirement.at:
            return None
        left = retirement.at - now
        return (
            f"signing key {self.current.label!r} retires at {text_of(retirement.at)} "
            f"({retirement.cause}), in {left.days} day(s) {left.seconds // 3600} hour(s): "
            "no successor is scheduled before then (tsa keys activate)"
        )

    def warnings(self, now: datetime) -> list[str]:
        return [w for w in (self.warning(now), self.trouble) if w]

    def chains(self) -> list[tuple[asn1_x509.Certificate, ...]]:
        """The chain of every key this TSA has signed with or is about to: this
        process's keys first (the active one leads), then the earlier ones."""
        own = [key.chain for key in self.keys() if key.chain]
        return own + [chain for chain in self.earlier if chain and chain not in own]

    def keys(self) -> list[SigningKey]:
        """Every key the ring holds (to close at shutdown)."""
        staged = [self.successor[2]] if self.successor else []
        return [self.current, *staged, *self._retired]
