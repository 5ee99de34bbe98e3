"""Failed sign-ins, counted per account and per client address: after `max_failures`
failures within `window` the account (or the address) is locked for `lock_for`, and
every attempt meanwhile is refused before its password is even checked (so a locked
account cannot be guessed at, and the server spends no argon2 time on it).

Kept in the memory of the server process: a restart forgets them, and each node of a
cluster counts its own (a guesser spread over nodes gets `max_failures` per node per
lock period, still a handful per hour against argon2id hashes). A success clears the
account's count, not the address's (one shared address, many people).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tsa_server.accounts.times import Now, utc_now

#: Most accounts and addresses remembered: the oldest are forgotten first.
MAX_TRACKED = 50_000


@dataclass
class _Record:
    failures: list[datetime] = field(default_factory=list)
    locked_until: datetime | None = None


class LoginLimits:
    """Per-account and per-address failure counts and temporary lock-outs."""

    def __init__(
        self,
        *,
        account_failures: int = 5,
        address_failures: int = 20,
        window: timedelta = timedelta(minutes=15),
        lock_for: timedelta = timedelta(minutes=15),
        now: Now = utc_now,
    ) -> None:
        self.limits = {"account": account_failures, "address": address_failures}
        self.window = window
        self.lock_for = lock_for
        self.now = now
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    def locked(self, account: str, address: str) -> timedelta | None:
        """How long until an attempt for `account` from `address` is allowed again;
        None when it is allowed now."""
        now = self.now()
        waits = []
        for key in (("account", account), ("address", address)):
            record = self._records.get(key)
            if record is not None and record.locked_until is not None:
                if record.locked_until > now:
                    waits.append(record.locked_until - now)
                else:
                    record.locked_until = None
        return max(waits) if waits else None

    def failed(self, account: str, address: str) -> timedelta | None:
        """Count a failure; the lock-out it starts, if any."""
        now = self.now()
        started = None
        for kind, name in (("account", account), ("address", address)):
            record = self._record((kind, name))
            record.failures = [t for t in record.failures if now - t < self.window]
            record.failures.append(now)
            if len(record.failures) >= self.limits[kind]:
                record.locked_until = now + self.lock_for
                record.failures.clear()
                started = self.lock_for
        return started

    def succeeded(self, account: str) -> None:
        self._records.pop(("account", account), None)

    def _record(self, key: tuple[str, str]) -> _Record:
        record = self._records.pop(key, None) or _Record()
        self._records[key] = record
        while len(self._records) > MAX_TRACKED:
            self._records.popitem(last=False)
        return record
