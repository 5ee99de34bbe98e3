"""Which tokens an incident affects, and the streaming scan that finds them.

By key (`--key FINGERPRINT`): the tokens whose signingCertificateV2 (ESSCertIDv2, the
SHA-256 certHash the TSA puts in every token's signed attributes) names an affected
certificate. That attribute is covered by the token's signature and says exactly which
certificate, hence which key, signed the token, whatever the operations log says about
when a key was in service; the operations log's `start` and `key_activated` events are
used to recognise the fingerprint and are listed in the report (when the certificate
was in force), not to select. The fingerprint is either the SHA-256 of a certificate
(its DER) or of a public key (its SubjectPublicKeyInfo DER); a key fingerprint selects
every known certificate of that key. Known certificates: the configured chain and any
given with --cert. A certificate fingerprint that neither these nor the operations log
know is refused: a typo must not yield an empty report that looks like good news.

By time (`--from T1 --to T2`): genTime in [T1, T2], both ends included, at the
millisecond precision of genTime. genTime never decreases with the index (L-06), so the
window is one index range, whose neighbours the report lists as boundaries.

Both may be given: the tokens of that certificate within the window.

The scan reads entries in index order, one at a time (`Reader.entries` streams), keeps
only the small facts of each match, and stops with a refusal once more than the cap
match: a report over millions of tokens is never held in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509

from ledger.store.base import Entry, Reader
from tsa_server.incident import IncidentError

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_IN_FORCE_KINDS = (b'"kind":"start"', b'"kind":"key_activated"')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Match:
    """What the report lists of one affected token (the token itself is not kept)."""

    index: int
    serial: int
    gen_time_ms: int
    imprint_alg: str
    imprint: bytes
    leaf_hash: bytes


@dataclass(frozen=True)
class Selection:
    """The affected tokens: by certificate (hashes), by genTime window, or both."""

    fingerprint: str | None = None  # as given, lower-case hex
    fingerprint_kind: str | None = None  # "certificate" or "public_key"
    certificates: frozenset[bytes] = frozenset()  # SHA-256 of the affected certificates
    from_ms: int | None = None
    to_ms: int | None = None  # included
    in_force: tuple[dict[str, Any], ...] = field(default=())

    @property
    def by_key(self) -> bool:
        return self.fingerprint is not None

    @property
    def by_time(self) -> bool:
        return self.from_ms is not None

    def describe(self) -> dict[str, Any]:
        """The selection as the report and the operations-log event state it."""
        found: dict[str, Any] = {}
        if self.by_key:
            found["key"] = {
                "fingerprint": self.fingerprint,
                "fingerprint_kind": self.fingerprint_kind,
                "certificates_sha256": sorted(c.hex() for c in self.certificates),
                "criterion": "the token's signingCertificateV2 (ESSCertIDv2) certHash",
                "in_force": list(self.in_force),
            }
        if self.from_ms is not None and self.to_ms is not None:
            found["time"] = {
                "from": iso_ms(self.from_ms),
                "to": iso_ms(self.to_ms),
                "from_ms": self.from_ms,
                "to_ms": self.to_ms,
                "criterion": "from_ms <= genTime <= to_ms",
            }
        return found

    def matches(self, entry: Entry) -> bool:
        if self.by_time and not (self.from_ms or 0) <= entry.gen_time_ms <= (self.to_ms or 0):
            return False
        if not self.by_key:
            return True
        # A cheap byte search first: the certHash is in the DER of every token it signed.
        if not any(c in entry.token for c in self.certificates):
            return False
        return signing_certificate_hash(entry.token) in self.certificates


def iso_ms(ms: int) -> str:
    """UTC ISO 8601 with milliseconds and Z, the way genTime reads."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_instant(text: str, option: str) -> int:
    """An ISO 8601 instant with an explicit zone (Z or an offset), in milliseconds."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise IncidentError(
            f"{option}: not an ISO 8601 instant: {text[:60]!r} (e.g. 2026-12-07T10:15:00Z)"
        ) from None
    if value.tzinfo is None:
        raise IncidentError(
            f"{option}: {text[:60]!r} has no time zone: end it with Z (UTC) or an offset"
        )
    return (value - _EPOCH) // timedelta(milliseconds=1)


def time_window(from_text: str | None, to_text: str | None) -> tuple[int, int] | None:
    """(from_ms, to_ms) of --from/--to, or None when neither is given."""
    if from_text is None and to_text is None:
        return None
    if from_text is None or to_text is None:
        raise IncidentError("a time selection needs both --from and --to")
    start, end = parse_instant(from_text, "--from"), parse_instant(to_text, "--to")
    if end < start:
        raise IncidentError(f"--to ({iso_ms(end)}) is before --from ({iso_ms(start)})")
    return start, end


def parse_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint: 64 hex digits, colons allowed (as openssl prints them)."""
    cleaned = text.strip().replace(":", "").lower()
    if not _FINGERPRINT.fullmatch(cleaned):
        raise IncidentError(
            "--key: not a SHA-256 fingerprint: give 64 hexadecimal digits (colons allowed), "
            "the SHA-256 of the TSA certificate or of its public key (SubjectPublicKeyInfo DER), "
            "e.g. `openssl x509 -in cert.pem -noout -fingerprint -sha256`"
        )
    return cleaned


def in_force_events(ops: Reader | None, hashes: Iterable[bytes]) -> list[dict[str, Any]]:
    """The operations log's `start` and `key_activated` events naming one of these
    certificates (any field ending in `certificate_sha256`), streamed in index order."""
    wanted = {h.hex() for h in hashes}
    found: list[dict[str, Any]] = []
    if ops is None:
        return found
    for entry in ops.entries():
        if not any(kind in entry.token for kind in _IN_FORCE_KINDS):
            continue
        try:
            event = json.loads(entry.token)
        except ValueError:
            continue
        named = {
            value
            for key, value in event.items()
            if key.endswith("certificate_sha256") and isinstance(value, str)
        }
        for certificate in sorted(named & wanted):
            found.append(
                {
                    "ops_index": entry.index,
                    "kind": event.get("kind"),
                    "time": iso_ms(entry.gen_time_ms),
                    "certificate_sha256": certificate,
                    "ledger_size": event.get("ledger_size"),
                }
            )
    return found


def resolve_key(
    fingerprint: str, known: Iterable[asn1_x509.Certificate], ops: Reader | None
) -> tuple[str, frozenset[bytes], list[dict[str, Any]]]:
    """(kind, affected certificate hashes, in-force events) for a fingerprint."""
    wanted = bytes.fromhex(fingerprint)
    by_cert: dict[bytes, bytes] = {}  # certificate SHA-256 -> SPKI SHA-256
    for certificate in known:
        spki = hashlib.sha256(certificate.public_key.dump()).digest()
        by_cert[hashlib.sha256(certificate.dump()).digest()] = spki
    if wanted in by_cert:
        kind, certificates = "certificate", frozenset({wanted})
    elif wanted in by_cert.values():
        kind = "public_key"
        certificates = frozenset(c for c, spki in by_cert.items() if spki == wanted)
    else:
        kind, certificates = "certificate", frozenset({wanted})
    events = in_force_events(ops, certificates)
    if wanted not in by_cert and kind == "certificate" and not events:
        raise IncidentError(
            f"--key {fingerprint}: unknown fingerprint: not the SHA-256 of a TSA certificate "
            "the operations log records (start, key_activated events), nor of a certificate "
            "or public key given with --cert or in [certificates] chain"
        )
    return kind, certificates, events


def signing_certificate_hash(token: bytes) -> bytes | None:
    """The SHA-256 certHash of the token's first ESSCertIDv2, or None (no such
    attribute, another hash algorithm, or not a token)."""
    try:
        signed = cms.ContentInfo.load(token)["content"]
        attributes = signed["signer_infos"][0]["signed_attrs"]
        for attribute in attributes:
            if attribute["type"].native != "signing_certificate_v2":
                continue
            first = attribute["values"][0]["certs"][0]
            if first["hash_algorithm"]["algorithm"].native != "sha256":
                return None
            return bytes(first["cert_hash"].native)
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return None


def scan(reader: Reader, selection: Selection, end: int, limit: int) -> tuple[range, list[Match]]:
    """The index range scanned (the window's, within [0, end)) and the matches in it,
    in index order; IncidentError once more than `limit` match."""
    first = reader.index_at_time(selection.from_ms) if selection.from_ms is not None else 0
    stop = end
    if selection.by_time and selection.to_ms is not None:
        stop = min(end, reader.index_at_time(selection.to_ms + 1))
    found: list[Match] = []
    if first >= stop:
        return range(first, max(first, stop)), found
    for entry in reader.entries(first, stop):
        if not selection.matches(entry):
            continue
        if len(found) >= limit:
            raise IncidentError(
                f"more than {limit} tokens match (the first {limit} end at genTime "
                f"{iso_ms(found[-1].gen_time_ms)}): split the selection into time windows "
                "with --from/--to (with --key too) or raise --max-tokens"
            )
        found.append(
            Match(
                entry.index,
                entry.serial,
                entry.gen_time_ms,
                entry.imprint_alg,
                entry.imprint,
                entry.leaf_hash,
            )
        )
    return range(first, stop), found
