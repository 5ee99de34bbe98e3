"""Registry events time-stamped by this TSA and appended to the operations log.

The seam: `EventSink.record` is synchronous and runs inside the registry operation,
just before the store commits (write-ahead); `Issuer.timestamp` is asynchronous. The
design, so an event is never recorded, nor reported, without its token:

1. **Dry run.** Under the service's lock, with the registry clock pinned to one
   instant, the operation runs with the sink in *capture* mode: the sink keeps the
   event's canonical bytes and raises `_Captured`. Raising from the sink means the
   operation has no effect (events.py), so nothing changed. A refusal never reaches
   the sink and is returned as is.
2. **Time-stamp.** The handler awaits `Issuer.timestamp(SHA-256(canonical), "sha256")`:
   the same path, ledger and policy as a client's request. No token (clock out of sync,
   signer failure...) raises `TimestampUnavailable`; the state is untouched.
3. **Commit.** Still under the lock (no other operation ran, so the state is the
   same) and at the same pinned instant, the operation runs again with the sink
   *armed* with the token. The sink checks the canonical bytes are exactly those that
   were time-stamped (else `EventMismatch`, no effect), appends
   ``name_event(seq, event_kind, handle, sha256)`` to the operations log, and stages the
   event row (canonical bytes, token, genTime, ops index) in the SQLite store, whose
   `commit` writes it in the same transaction as the new state.

The operations log entry is written ahead of the commit: if the commit then fails,
the log holds an entry for a sequence number the store reuses for its next event
(the history's stored row, with its token, is the authoritative one).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from asn1crypto import cms, tsp  # noqa: F401 - tsp registers TSTInfo with cms

from tsa_server.clock.beijing import utc_text
from tsa_server.database import Database, database_errors

from .core import Done, Result
from .events import Event
from .policy_admin import PolicyAdmin
from .policy_edits import ListEdit
from .policy_store import PolicyChange, PolicyStore
from .registry import Registry
from .sql_store import SqlNameStore, StoredEvent
from .store import HandleStatus


class TimestampUnavailable(Exception):
    """The TSA gave no token for an event: the operation did not happen."""


class EventMismatch(Exception):
    """The committing run produced other bytes than the time-stamped ones."""


class _Captured(Exception):
    def __init__(self, event: Event, canonical: bytes) -> None:
        super().__init__("captured")
        self.event, self.canonical = event, canonical


@dataclass(frozen=True)
class Stamp:
    canonical: bytes
    token: bytes
    gen_time: str


def gen_time_of(token: bytes) -> datetime:
    """genTime of a DER TimeStampToken (a CMS ContentInfo holding a TSTInfo)."""
    info = cms.ContentInfo.load(token)
    tst = info["content"]["encap_content_info"]["content"].parsed
    gen_time: datetime = tst["gen_time"].native
    return gen_time.astimezone(UTC)


def iso_ms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class TimestampingSink:
    """The `EventSink` of the served registry (see the module docstring)."""

    def __init__(self, store: SqlNameStore, ops: Any | None) -> None:
        self.store = store
        self.ops = ops  # tsa_server.issuance.opslog.OpsLog (None only in unit tests)
        self._capture = False
        self._stamp: Stamp | None = None

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        self._capture = True
        try:
            yield
        finally:
            self._capture = False

    @contextlib.contextmanager
    def armed(self, stamp: Stamp) -> Iterator[None]:
        self._stamp = stamp
        try:
            yield
        finally:
            self._stamp = None

    def record(self, event: Event, canonical: bytes) -> None:
        if self._capture:
            raise _Captured(event, canonical)
        stamp, self._stamp = self._stamp, None  # one event per armed run
        if stamp is None:
            raise TimestampUnavailable("an event needs its time-stamp token first")
        if stamp.canonical != canonical:
            raise EventMismatch(f"event {event.seq} changed between dry run and commit")
        digest = hashlib.sha256(canonical).hexdigest()
        index = None
        if self.ops is not None:
            index = self.ops.record(
                "name_event",
                seq=event.seq,
                event_kind=event.kind.value,  # `kind` is the log entry's own ("name_event")
                handle=event.handle,
                sha256=digest,
            )
        self.store.stage_event(
            StoredEvent(
                seq=event.seq,
                kind=event.kind.value,
                key=event.key,
                handle=event.handle,
                at=event.to_json()["at"],
                canonical=canonical,
                sha256=digest,
                token=stamp.token,
                gen_time=stamp.gen_time,
                ops_index=index,
            )
        )


class PinnedClock:
    """The registry's clock: the system clock, or one instant while an operation runs."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self.pinned: datetime | None = None

    def __call__(self) -> datetime:
        return self.pinned if self.pinned is not None else self._now()


class NamesService:
    """The served registry: every accepted operation is time-stamped, then committed."""

    def __init__(
        self,
        registry: Registry,
        store: SqlNameStore,
        sink: TimestampingSink,
        clock: PinnedClock,
        timestamp: Callable[[bytes, str], Any],
        operators: frozenset[str] = frozenset(),
        policy_admin: PolicyAdmin | None = None,
    ) -> None:
        self.registry, self.store, self.sink, self.clock = registry, store, sink, clock
        self._timestamp = timestamp  # Issuer.timestamp
        self.operators = operators
        self.policy_admin = policy_admin  # word lists and weights in force (policy_admin.py)
        self._lock = asyncio.Lock()

    def handle_of(self, org_id: str) -> str | None:
        """The handle an organisation holds now (its shop is the organisation), or None:
        what an evidence certificate prints beside the holder's name."""
        rec = self.store.by_shop(org_id)
        if rec is None or rec.status is not HandleStatus.ACTIVE or rec.holding is None:
            return None
        if rec.holding.shop_id != org_id or rec.holding.account_id != org_id:
            return None
        return rec.holding.handle

    async def edit_policy(
        self,
        *,
        if_match: str,
        by: Mapping[str, str],
        edits: tuple[ListEdit, ...] = (),
        weights: Mapping[str, Fraction | None] | None = None,
    ) -> PolicyChange:
        """An administrator's change of the word lists / weights (call inside
        `operation()`): time-stamped, in the operations log, durable, then in force."""
        assert self._lock.locked(), "edit_policy() outside operation()"
        if self.policy_admin is None:
            raise TimestampUnavailable("the policy is not editable on this server")
        return await self.policy_admin.edit(
            if_match=if_match,
            by=by,
            at=utc_text(self.clock()),
            edits=edits,
            weights=weights,
            stamp=self._stamp,
            ops=self.sink.ops,
        )

    @contextlib.asynccontextmanager
    async def operation(self) -> AsyncIterator[NamesService]:
        """Serialise operations; `run` inside it performs one event each."""
        async with self._lock:
            yield self

    async def run(self, op: Callable[[Registry], Result]) -> Result:
        """Dry run, time-stamp, commit (call inside `operation()`)."""
        assert self._lock.locked(), "run() outside operation()"
        self.clock.pinned = self.clock._now()
        try:
            try:
                with self.sink.capturing():
                    result = await _off_loop(op, self.registry)
            except _Captured as captured:
                canonical = captured.canonical
            else:
                return result  # refused: nothing happened, nothing to time-stamp
            stamp = await self._stamp(canonical)
            with self.sink.armed(stamp):
                result = await _off_loop(op, self.registry)
            if not isinstance(result, Done):
                raise EventMismatch("the operation was refused on its committing run")
            return result
        finally:
            self.clock.pinned = None

    async def _stamp(self, canonical: bytes) -> Stamp:
        digest = hashlib.sha256(canonical).digest()
        try:
            issued = await self._timestamp(digest, "sha256")
        except ValueError as exc:
            raise TimestampUnavailable(str(exc)) from None
        if issued.token is None:
            raise TimestampUnavailable("the TSA refused to time-stamp the event")
        return Stamp(canonical, issued.token, iso_ms(gen_time_of(issued.token)))


async def _off_loop(op: Callable[[Registry], Result], registry: Registry) -> Result:
    """`op(registry)` in a worker thread: its reads and its commit are database round
    trips that must not hold up the event loop (issuance). The caller holds the
    operation lock, so operations still run one at a time; a cancelled caller waits for
    an operation already begun, whose sink state it must not tear down under it."""
    work = asyncio.ensure_future(asyncio.to_thread(op, registry))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


def event_json(e: StoredEvent, *, reveal: bool) -> dict[str, Any]:
    """One history entry; the event's bytes only when `reveal` (they may hold contenders'
    metrics or another account's data)."""
    out: dict[str, Any] = {
        "seq": e.seq,
        "kind": e.kind,
        "handle": e.handle,
        "at": e.at,
        "sha256": e.sha256,
        "token": base64.b64encode(e.token).decode(),
        "gen_time": e.gen_time,
        "ops_index": e.ops_index,
    }
    if reveal:
        out["canonical"] = base64.b64encode(e.canonical).decode()
    return out


def open_names(
    conf: Any, issuer: Any, ops: Any, where: Path | Database | None = None
) -> NamesService | None:
    """The served registry of [names] (tsa_server.config.NamesConfig), its tables in
    `where` (default: the [names] path SQLite file); None, with a warning, when the
    policy file does not exist. A malformed policy is a ConfigError."""
    import logging

    from tsa_server.errors import ConfigError

    from .config import load_policy
    from .words import LexiconSource

    policy_path = Path(conf.policy)
    if not policy_path.exists():
        logging.getLogger("tsa.names").warning("no handle registry: %s does not exist", policy_path)
        return None
    policy = load_policy(policy_path)
    source = None
    if policy.word_lists is not None:
        w = policy.word_lists
        source = LexiconSource(w.banned, w.restricted, w.brands)
    try:
        store = SqlNameStore(conf.path if where is None else where, owns=True)
        policy_store = PolicyStore(store.db)
    except database_errors() as exc:
        raise ConfigError(f"[names] path: cannot open {conf.path}: {exc}") from None
    sink = TimestampingSink(store, ops)
    clock = PinnedClock()
    registry = Registry(policy, lambda: admin.lexicon(), clock, sink, store)
    try:
        admin = PolicyAdmin(policy, source, policy_store, lambda p: setattr(registry, "policy", p))
    except ValueError as exc:  # EditError: the stored weights and the file disagree
        raise ConfigError(f"[names] stored policy overlay: {exc}") from None
    return NamesService(
        registry, store, sink, clock, issuer.timestamp, frozenset(conf.operators), admin
    )
