"""Key rotation in the running server: the key schedule (signing/schedule.py) applied to
the issuer's key ring (issuance/keyring.py) without a failed request.

The server reads the schedule at start (the active key is the schedule's, once a key
has been activated; before that the configuration's `[pkcs11] key_label`), then every
`POLL_S` seconds (a stat; the file is parsed again only when it changed) and at once
on SIGHUP. A key scheduled for a later instant is prepared as soon as it is seen — its
session, its signing worker processes and its token template are built in a thread,
off the event loop — and staged in the ring; an asyncio timer switches at the instant
if no batch did first. A key whose instant has already passed (`--at now`, or a
schedule read late) is prepared the same way and becomes active the moment it is
staged: the `key_activated` event in the operations log records both instants. The
old key's pool is closed once its last batch is signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509

from tsa_server.clock.base import Clock
from tsa_server.config import Config
from tsa_server.errors import CertificateError, ConfigError, TSAError
from tsa_server.issuance.issuer import Issuer
from tsa_server.issuance.keyring import SigningKey, Switch
from tsa_server.issuance.opslog import OpsLog
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.rfc3161.verify_load import load_certificates
from tsa_server.signing import schedule
from tsa_server.signing.certs import check_tsa_certificate
from tsa_server.signing.pkcs11 import Pkcs11Signer, TokenLocation
from tsa_server.signing.pool import BatchSigner, batch_signer_for

log = logging.getLogger("tsa.keys")

POLL_S = 1.0
WARN_EVERY_S = 86400.0  # the retirement warning goes to the log once a day at most


def certificate_retirement(cert: asn1_x509.Certificate, months: int) -> schedule.Retirement:
    validity = cert["tbs_certificate"]["validity"]
    return schedule.retirement(validity["not_before"].native, validity["not_after"].native, months)


def scheduled_chain(path: Path, key: schedule.ScheduledKey) -> list[asn1_x509.Certificate]:
    """The chain the schedule names for `key`, checked against its recorded SHA-256."""
    chain_path = path.parent / key.chain
    try:
        chain = load_certificates(chain_path.read_bytes())
    except OSError as exc:
        message = f"key {key.label!r}: cannot read {chain_path}: {exc.strerror}"
        raise CertificateError(message) from None
    except ValueError:
        raise CertificateError(f"{chain_path} does not hold PEM or DER certificates") from None
    if not chain or hashlib.sha256(chain[0].dump()).hexdigest() != key.certificate_sha256:
        raise CertificateError(f"{chain_path} is not the certificate imported for {key.label!r}")
    return chain


def active_source(
    config: Config, now: datetime, initial: Callable[[], list[asn1_x509.Certificate]]
) -> tuple[str, list[asn1_x509.Certificate]]:
    """The label and chain active at `now`: the schedule's, else the configuration's
    key with `initial()` (the [certificates] chain)."""
    path = config.certificates.key_schedule_path
    key = schedule.load(path).active_at(now)
    if key is None:
        return config.pkcs11.key_label, initial()
    return key.label, scheduled_chain(path, key)


def earlier_chains(
    config: Config, initial: Callable[[], list[asn1_x509.Certificate]]
) -> tuple[tuple[asn1_x509.Certificate, ...], ...]:
    """The chains of the configuration's initial key and of every key the schedule has
    imported (readable and matching; one that is not is left out and logged)."""
    chains: list[tuple[asn1_x509.Certificate, ...]] = []
    try:
        chains.append(tuple(initial()))
    except (CertificateError, ConfigError) as exc:
        log.warning("the initial TSA chain is not readable: %s", exc)
    path = config.certificates.key_schedule_path
    for key in schedule.load(path).keys:
        if not key.chain:
            continue
        try:
            chains.append(tuple(scheduled_chain(path, key)))
        except CertificateError as exc:
            log.warning("key %r: %s", key.label, exc)
    return tuple(chains)


def make_key(
    config: Config,
    label: str,
    signer: Pkcs11Signer,
    batch_signer: BatchSigner,
    chain: list[asn1_x509.Certificate],
) -> SigningKey:
    template = TokenTemplate(
        signer.key_spec,
        chain,
        rsa_pss=signer.rsa_pss,
        include_tsa_name=config.tsa.include_tsa_name,
        include_chain=config.tsa.include_chain,
    )
    retirement = certificate_retirement(chain[0], config.tsa.key_usage_months)
    return SigningKey(label, signer, batch_signer, template, tuple(chain), retirement)


def build_key(
    config: Config, location: TokenLocation, label: str, chain: list[asn1_x509.Certificate]
) -> SigningKey:
    """Open key `label`, check its certificate fits it, start its signing workers
    (blocking: call it in a thread)."""
    signer = Pkcs11Signer(location, label, rsa_pss=config.pkcs11.rsa_pss)
    try:
        validity = chain[0]["tbs_certificate"]["validity"]
        # Valid at some instant: whether it is valid when it signs is the ring's check.
        check_tsa_certificate(chain[0], signer.public_key_info(), validity["not_before"].native)
        workers = config.tsa.signing_workers
        pool = batch_signer_for(signer, location, label, rsa_pss=signer.rsa_pss, workers=workers)
    except BaseException:
        signer.close()
        raise
    key = make_key(config, label, signer, pool, chain)
    key.close_with_issuer = True
    return key


class KeyRotation:
    """Applies the key schedule to the issuer (module doc)."""

    def __init__(
        self,
        config: Config,
        location: TokenLocation,
        issuer: Issuer,
        ops: OpsLog | None,
        clock: Clock,
    ) -> None:
        self._config, self._location, self._ops, self._clock = config, location, ops, clock
        self._path = config.certificates.key_schedule_path
        self._ring = issuer.keys
        self._ring.on_switch = self._switched
        self._ring.on_drained = self._drained
        self._read: tuple[Any, schedule.KeySchedule] = (None, schedule.KeySchedule())
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._built: list[SigningKey] = []
        self._warned_at = -WARN_EVERY_S

    async def run(self, _app: object = None) -> AsyncIterator[None]:
        """An aiohttp cleanup context: poll the schedule while the server runs."""
        task = asyncio.create_task(self._poll())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._timer is not None:
            self._timer.cancel()

    def reload(self) -> None:
        """SIGHUP: read the schedule again now."""
        self._read = (None, self._read[1])
        self._spawn(self.check())

    async def _poll(self) -> None:
        while True:
            await self.check()
            warning = self._ring.warning(self._clock.now())
            if warning and time.monotonic() - self._warned_at >= WARN_EVERY_S:
                self._warned_at = time.monotonic()
                log.warning("%s", warning)
            await asyncio.sleep(POLL_S)

    async def check(self) -> None:
        """Stage (or switch to) what the schedule says; a fault is kept for /readyz."""
        async with self._lock:
            try:
                await self._apply(await asyncio.to_thread(self._schedule))
                trouble = None
            except TSAError as exc:
                trouble = f"key schedule: {exc}"
            except Exception as exc:  # noqa: BLE001 - the server keeps its current key
                trouble = f"key schedule: {type(exc).__name__}: {exc}"
            if trouble and trouble != self._ring.trouble:
                log.error("%s", trouble)
            self._ring.trouble = trouble

    def _schedule(self) -> schedule.KeySchedule:
        try:
            info = os.stat(self._path)
            stamp: Any = (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp == self._read[0]:
            return self._read[1]
        read = schedule.load(self._path)
        self._read = (stamp, read)
        return read

    async def _apply(self, plan: schedule.KeySchedule) -> None:
        ring, now = self._ring, self._clock.now()
        due, upcoming = plan.active_at(now), plan.next_after(now)
        target = due if due is not None and due.label != ring.current.label else upcoming
        staged = ring.successor
        if target is None or target.activate_at is None:
            dropped = ring.unstage()
            if dropped is not None:
                log.warning("scheduled key %r withdrawn from the schedule", dropped.label)
                self._drained(dropped)
            return
        at = target.activate_at
        if staged is not None and staged[2].label == target.label and staged[0] == at:
            return
        if staged is not None and staged[2].label == target.label:
            key = staged[2]  # the same key at another instant: no need to build it again
            ring.unstage()
        else:
            chain = await asyncio.to_thread(scheduled_chain, self._path, target)
            key = await asyncio.to_thread(
                build_key, self._config, self._location, target.label, chain
            )
            self._built.append(key)
        ring.stage(key, at, self._clock.now())
        log.warning("signing key %r staged to activate at %s", key.label, schedule.text_of(at))
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        successor = self._ring.successor
        if successor is None:
            return
        delay = (successor[1] - self._clock.now()).total_seconds()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._ring.switch_due(self._clock.now())
        self._arm()  # the loop's timer ran early by the clock: wait the rest

    def _switched(self, switch: Switch) -> None:
        old, new = switch.old, switch.new
        details = {
            "label": new.label,
            "certificate_sha256": new.certificate_sha256,
            "previous_label": old.label,
            "previous_certificate_sha256": old.certificate_sha256,
            "scheduled_at": schedule.text_of(switch.scheduled_at),
            "activated_at": schedule.text_of(switch.activated_at),
        }
        if self._ops is not None:
            self._spawn(asyncio.to_thread(self._ops.record_safely, "key_activated", **details))

    def _drained(self, key: SigningKey) -> None:
        """The key signs no more: stop its signing workers, off the loop."""
        self._spawn(asyncio.to_thread(key.retire))

    def _spawn(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """At shutdown (after the loop): close the keys this rotation built."""
        for key in self._built:
            with contextlib.suppress(Exception):
                key.close()
