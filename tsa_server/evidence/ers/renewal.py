"""What the renewal scheduler does for evidence records each pass, per organisation
(called by evidence/renewal_runner.py after the storage renewals):

1. **Records for new items.** Certified items without a record (oldest first, at most
   `max_group`) are grouped into ONE hash tree per organisation and hash algorithm (an
   organisation's tree never holds another's hashes: a reduced hash tree shows its
   neighbours' hash values). Its root is time-stamped by this TSA through the issuer
   (the token is in the token ledger); each item gets its record. The algorithm is
   SHA-256, or SHA-512 when `weak_hashes` lists SHA-256 and the item's SHA-512 is known.
2. **Hash-tree renewal** (RFC 4998 section 5.2): records whose current algorithm is in
   `weak_hashes` are re-hashed with SHA-512 (a new chain over H(H(d) || H(chains so
   far))), a group of at most `max_group` per tree. It needs the item's SHA-512 (known
   for stored originals and for hash-only deposits that gave it); a record that cannot be
   re-hashed keeps being timestamp-renewed.
3. **Timestamp renewal**: records whose last archive timestamp's TSA certificate ends
   within `renew_before` get a new archive timestamp over that timestamp; all records of
   one tree share it, so one token renews a whole group (`group_key`). A renewal is only
   worth making with a certificate that ends later: while the TSA still signs with the
   certificate that is running out, renewal waits (one probe a day at most, logged) for
   the key rollover (docs/operations.md).

Each step is recorded in the operations log (`evidence_record_created`,
`evidence_record_renewed` with the kind, the count, the algorithm, the tree root or
renewed hash and the token's serial). Work per pass is bounded: at most `max_tokens`
tokens per organisation. A step whose token cannot be had (the CLI has no issuer; the
clock is unusable) is deferred to the next pass, not an error.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ledger.serials import serial_text
from tsa_server.evidence.ers.asn1 import load_record
from tsa_server.evidence.ers.build import (
    Stamp,
    initial_records,
    record_facts,
    renew_hash_tree,
    renew_timestamp,
    timestamp_renewal_imprint,
    token_facts,
)
from tsa_server.evidence.ports import OpsRecorder
from tsa_server.evidence.store.evidence_records import (
    EvidenceRecordStore,
    RecordCandidate,
    RecordRow,
)

log = logging.getLogger("tsa.evidence.ers")

#: How often a blocked timestamp renewal probes for a new TSA certificate.
PROBE_EVERY = timedelta(days=1)
#: The algorithm hash-tree renewal re-hashes with.
STRONG = "sha512"


class StampUnavailable(Exception):
    """No token now (no issuer in this process, clock unusable): try the next pass."""


@dataclass(frozen=True)
class ErsSettings:
    """[evidence] ers_* of the configuration."""

    renew_before: timedelta = timedelta(days=90)
    weak_hashes: frozenset[str] = frozenset()
    max_group: int = 1000  # items in one hash tree
    max_tokens: int = 10  # tokens per organisation per pass


@dataclass
class ErsCounts:
    created: int = 0
    renewed_timestamp: int = 0
    renewed_hash_tree: int = 0
    deferred: int = 0
    notes: list[str] = field(default_factory=list)


class EvidenceRecords:
    """The evidence-record steps of one renewal pass (module docstring)."""

    def __init__(
        self,
        store: EvidenceRecordStore,
        stamp: Callable[[bytes, str], bytes],
        ops: OpsRecorder | None,
        settings: ErsSettings | None = None,
    ) -> None:
        self.store, self.ops = store, ops
        self.settings = settings or ErsSettings()
        self._stamp = stamp
        self._lock = threading.Lock()
        self._tokens = 0
        # the end of the TSA certificate that signs now, and when it was last seen
        self._signer_end: datetime | None = None
        self._signer_seen: datetime | None = None

    def run(self, org_id: str, now: datetime) -> ErsCounts:
        counts = ErsCounts()
        self._tokens = 0
        steps: Sequence[Callable[[str, datetime, ErsCounts], None]] = (
            self._create,
            self._rehash,
            self._retimestamp,
        )
        for step in steps:
            try:
                step(org_id, now, counts)
            except StampUnavailable as exc:
                counts.deferred += 1
                counts.notes.append(str(exc))
                break
        return counts

    # ------------------------------------------------------------ stamping

    def _token(self, value: bytes, algorithm: str, now: datetime) -> bytes:
        if self._tokens >= self.settings.max_tokens:
            raise StampUnavailable("token budget of this pass used")
        self._tokens += 1
        try:
            token = self._stamp(value, algorithm)
        except StampUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the issuer's refusal: the next pass retries
            raise StampUnavailable(f"no time-stamp token: {exc}") from None
        end = token_facts(token).signer_not_after
        with self._lock:
            self._signer_end, self._signer_seen = end, now
        return token

    def _stamping(self, now: datetime) -> Stamp:
        return lambda value, algorithm: self._token(value, algorithm, now)

    # ------------------------------------------------------------ steps

    def _create(self, org_id: str, now: datetime, counts: ErsCounts) -> None:
        candidates = self.store.items_without_record(org_id, self.settings.max_group)
        groups: dict[str, dict[str, bytes]] = defaultdict(dict)
        for item in candidates:
            algorithm, leaf = self._leaf(item)
            groups[algorithm][item.item_id] = leaf
        for algorithm, leaves in groups.items():
            root, token, records = initial_records(algorithm, leaves, self._stamping(now))
            self._save(org_id, records)
            counts.created += len(records)
            self._event("evidence_record_created", org_id, algorithm, root, token, len(records))

    def _leaf(self, item: RecordCandidate) -> tuple[str, bytes]:
        if "sha256" in self.settings.weak_hashes and item.sha512:
            return STRONG, bytes.fromhex(item.sha512)
        return "sha256", bytes.fromhex(item.sha256)

    def _rehash(self, org_id: str, now: datetime, counts: ErsCounts) -> None:
        weak = sorted(self.settings.weak_hashes - {STRONG})
        rows = self.store.records_to_rehash(org_id, weak, self.settings.max_group)
        if not rows:
            return
        group = {r.item_id: (r.record, bytes.fromhex(r.sha512 or "")) for r in rows}
        root, token, records = renew_hash_tree(group, STRONG, self._stamping(now))
        self._save(org_id, records)
        counts.renewed_hash_tree += len(records)
        self._event(
            "evidence_record_renewed", org_id, STRONG, root, token, len(records), "hash_tree"
        )

    def _retimestamp(self, org_id: str, now: datetime, counts: ErsCounts) -> None:
        rows = self.store.records_renew_by(
            org_id, now + self.settings.renew_before, self.settings.max_group
        )
        groups: dict[str, list[RecordRow]] = defaultdict(list)
        for row in rows:
            groups[row.group_key].append(row)
        for members in groups.values():
            renew_by = members[0].renew_by
            if not self._worth_it(renew_by, now):
                counts.notes.append(
                    f"timestamp renewal waits: the TSA certificate signing now ends at "
                    f"{self._signer_end}, not after the records' {renew_by}"
                )
                continue
            algorithm, imprint = timestamp_renewal_imprint(members[0].record)
            token = self._token(imprint, algorithm, now)
            end = token_facts(token).signer_not_after
            if renew_by is not None and (end is None or end <= renew_by):
                log.warning(
                    "evidence records of %s: timestamp renewal needs a TSA certificate that "
                    "ends after %s (key rollover); this one ends %s",
                    org_id,
                    renew_by,
                    end,
                )
                continue
            renewed = {m.item_id: renew_timestamp(m.record, token) for m in members}
            self._save(org_id, renewed)
            counts.renewed_timestamp += len(renewed)
            self._event(
                "evidence_record_renewed",
                org_id,
                algorithm,
                imprint,
                token,
                len(renewed),
                "timestamp",
            )

    def _worth_it(self, renew_by: datetime | None, now: datetime) -> bool:
        """Whether a renewal can gain anything: the certificate signing now (as last
        seen) ends later than the one the record's last timestamp was made with; once a
        day the question is asked again with a real token (a rollover may have come)."""
        with self._lock:
            end, seen = self._signer_end, self._signer_seen
        if end is None or seen is None or renew_by is None or now - seen >= PROBE_EVERY:
            return True
        return end > renew_by

    # ------------------------------------------------------------ bookkeeping

    def _save(self, org_id: str, records: Mapping[str, bytes]) -> None:
        rows = []
        for item_id, record in records.items():
            algorithm, group_key, facts = record_facts(record)
            chains = load_record(record)["archive_time_stamp_sequence"]
            rows.append(
                RecordRow(
                    item_id=item_id,
                    record=record,
                    algorithm=algorithm,
                    group_key=group_key.hex(),
                    renew_by=facts.signer_not_after,
                    chains=len(chains),
                    stamps=sum(len(chain) for chain in chains),
                )
            )
        self.store.put_evidence_records(org_id, rows)

    def _event(
        self,
        kind: str,
        org_id: str,
        algorithm: str,
        root: bytes,
        token: bytes,
        count: int,
        renewal: str | None = None,
    ) -> None:
        facts = token_facts(token)
        details: dict[str, Any] = {
            "org": org_id,
            "items": count,
            "algorithm": algorithm,
            "root": root.hex(),
            "serial": serial_text(facts.serial),
        }
        if renewal is not None:
            details["renewal"] = renewal
        log.info("%s: %s", kind, details)
        if self.ops is not None:
            self.ops.record(kind, **details)
