"""Certification path building and validation at the time of stamping.

A time-stamp token outlives its TSA certificate: what matters is that every
certificate on the path was valid when the token was produced. The path is
validated at ``genTime`` (RFC 5280 §6.1 with the validation time set to genTime,
as RFC 3161 §4 and the long-term validation practice of RFC 3126 intend).
Revocation is ``verify_revocation``'s.

Path building is bounded, because the certificates it works with come from the
token (anyone can send one to POST /verify) and a handful of crafted certificates
can offer exponentially many paths. These rules keep it linear in practice and
bounded always (RFC 4158 §2.4.2, §3):

* No (subject, public key) twice on a path. Self-issued copies of one CA (same name,
  same key, other serials) are then alternatives for one position, not links of
  ever longer chains. Nothing valid is lost: when a path holds two such copies, the
  path that skips from the certificate below the first copy to the second copy is
  also signed link by link and holds a subset of its certificates, so it is valid
  whenever the longer one is. Copies are still tried one by one, as they may differ
  in validity, extensions and issuer.
* Each signature is checked once per (certificate, issuer key): every copy of an
  issuer costs one signature check, not one per copy.
* What lies above a certificate depends only on its issuer name and key identifier,
  the depth and the keys already used: once that reached no trust anchor, another
  copy in the same place is not searched again.
* At most ``MAX_UNTRUSTED`` untrusted certificates, and a fixed work budget per search
  (``MAX_STEPS`` candidates considered, ``MAX_SIGNATURES`` signature checks).
  Promising candidates go first (trusted certificates, then issuers valid at genTime
  that may sign certificates, self-issued ones after the others), the first valid
  path ends the search, and a search past its budget is a failure that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509

from .verify_crypto import SignatureInvalid, verify_signature
from .verify_load import name_text

__all__ = ["MAX_SIGNATURES", "MAX_STEPS", "MAX_UNTRUSTED", "PathResult", "label", "validate_path"]

_MAX_DEPTH = 10
#: Candidate issuers considered (plus certificates of complete paths checked) in one
#: search. A legitimate chain, cross-certified or rolled over, needs tens.
MAX_STEPS = 1000
#: Signature checks in one search: at most ~1.3 ms each (RSA-16384), so ~65 ms.
MAX_SIGNATURES = 50
#: Untrusted certificates (embedded and supplied, duplicates removed) a search accepts.
MAX_UNTRUSTED = 128
#: Critical extensions whose semantics this module implements or may safely ignore.
_UNDERSTOOD = frozenset(
    {
        "basic_constraints",
        "key_usage",
        "extended_key_usage",
        "subject_alt_name",
        "issuer_alt_name",
        "certificate_policies",
        "key_identifier",
        "authority_key_identifier",
    }
)


def label(cert: x509.Certificate) -> str:
    """Quoted subject of a certificate, for messages."""
    return f"'{name_text(cert.subject)}'"


@dataclass(frozen=True)
class PathResult:
    """A validated path (signer first, trust anchor last), or why there is none."""

    path: tuple[x509.Certificate, ...]
    reason: str


@dataclass(frozen=True)
class _Node:
    """A candidate certificate with what path building compares, computed once."""

    cert: x509.Certificate
    subject: str  # RFC 5280 §7.1 comparable form (asn1crypto's Name.hashable)
    issuer: str
    key: bytes  # the SubjectPublicKeyInfo DER
    rank: int  # the order candidates are tried in (_rank)

    @property
    def identity(self) -> tuple[str, bytes]:
        return self.subject, self.key

    @property
    def anchor(self) -> bool:
        return self.rank <= 1


class _OverBudget(Exception):
    """The search spent its budget without finding a valid path."""


def _rank(cert: x509.Certificate, self_issued: bool, at: datetime) -> int:
    """Order of untrusted candidates: 2 fit to issue at ``at``, 3 fit but self-issued (a
    dead end unless a rollover link), 4 the rest, tried last only for the reason they
    give. Orders, never excludes. (0 and 1, trusted and same name and key as a trusted
    certificate, end a path.)"""
    usage = cert.key_usage_value
    fit = (
        _validity_problem(cert, at) is None
        and cert.ca
        and (usage is None or "key_cert_sign" in usage.native)
    )
    if not fit:
        return 4
    return 3 if self_issued else 2


class _Search:
    """Depth-first search for a valid path from one signer, within a fixed budget."""

    def __init__(
        self,
        pool: Sequence[x509.Certificate],
        anchors: Sequence[x509.Certificate],
        at: datetime,
    ) -> None:
        self.at = at
        self.names: dict[bytes, str] = {}  # name DER -> comparable form: copies share names
        trusted = {a.dump() for a in anchors}
        self.trusted_ids = {(self._name(a.subject), a.public_key.dump()) for a in anchors}
        # issuer name -> the certificates of that name, grouped by key (copies of one CA
        # are one group), groups and copies in the order they are tried
        self.by_subject: dict[str, list[list[_Node]]] = {}
        grouped: dict[str, dict[bytes, list[_Node]]] = {}
        seen: set[bytes] = set()
        for cert in [*anchors, *pool]:
            der = cert.dump()
            if der not in seen:
                seen.add(der)
                node = self._node(cert, der in trusted)
                grouped.setdefault(node.subject, {}).setdefault(node.key, []).append(node)
        for subject, groups in grouped.items():
            ordered = [sorted(g, key=lambda n: n.rank) for g in groups.values()]
            self.by_subject[subject] = sorted(ordered, key=lambda g: g[0].rank)
        self.steps = 0
        self.signatures = 0
        self.anchors_reached = 0
        self.checked: dict[tuple[bytes, bytes], str | None] = {}
        self.barren: set[tuple[object, ...]] = set()
        self.dead_end: str | None = None
        self.first_problem: str | None = None

    def _name(self, name: x509.Name) -> str:
        der = name.dump()
        if der not in self.names:
            self.names[der] = name.hashable  # RFC 5280 §7.1 string preparation: costly
        return self.names[der]

    def _node(self, cert: x509.Certificate, trusted: bool) -> _Node:
        subject, issuer = self._name(cert.subject), self._name(cert.issuer)
        key = cert.public_key.dump()
        if trusted or (subject, key) in self.trusted_ids:
            rank = 0 if trusted else 1
        else:
            rank = _rank(cert, subject == issuer, self.at)
        return _Node(cert, subject, issuer, key, rank)

    def start(self, signer: x509.Certificate) -> tuple[x509.Certificate, ...] | None:
        node = self._node(signer, False)
        found = self._extend((node,), frozenset({node.identity}))
        return tuple(n.cert for n in found) if found else None

    def _spend(self, steps: int) -> None:
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise _OverBudget

    def _extend(
        self, path: tuple[_Node, ...], used: frozenset[tuple[str, bytes]]
    ) -> tuple[_Node, ...] | None:
        top = path[-1]
        if top.anchor:
            self.anchors_reached += 1
            self._spend(len(path))
            certs = tuple(n.cert for n in path)
            problem = _path_problem(certs, tuple(n.subject == n.issuer for n in path), self.at)
            if problem is None:
                return path
            self.first_problem = self.first_problem or problem
            return None
        if len(path) >= _MAX_DEPTH:
            self._dead_end(f"the path from {label(path[0].cert)} is longer than {_MAX_DEPTH}")
            return None
        return self._issuers_above(path, used)

    def _issuers_above(
        self, path: tuple[_Node, ...], used: frozenset[tuple[str, bytes]]
    ) -> tuple[_Node, ...] | None:
        top = path[-1]
        aki = top.cert.authority_key_identifier
        # Past the signatures on ``top``, what lies above it depends only on its issuer
        # name and key identifier, the depth and the identities used: when that reached
        # no trust anchor, it never will from another copy of ``top`` either.
        above = (top.issuer, aki, len(path), used)
        if above in self.barren:
            return None
        reached, signatures_ok, named = self.anchors_reached, True, False
        for group in self.by_subject.get(top.issuer, ()):
            self._spend(1)
            if group[0].identity in used:
                named = True
                continue  # a shorter path goes through the copy already on this one
            for issuer in group:
                ski = issuer.cert.key_identifier
                if aki is not None and ski is not None and aki != ski:
                    continue
                named = True
                self._spend(1)
                problem = self._signed_by(top, issuer)
                if problem:
                    self._dead_end(problem)
                    signatures_ok = False
                    continue
                found = self._extend((*path, issuer), used | {issuer.identity})
                if found:
                    return found
        if not named:
            self._dead_end(self._no_issuer(top.cert))
        elif top.issuer == top.subject:
            self._dead_end(f"{label(top.cert)} is self-issued and not a trust root")
        if signatures_ok and self.anchors_reached == reached:
            self.barren.add(above)
        return None

    def _dead_end(self, reason: str) -> None:
        self.dead_end = self.dead_end or reason

    def _signed_by(self, child: _Node, issuer: _Node) -> str | None:
        """None when ``issuer``'s key made ``child``'s signature (RFC 5280 §6.1.3 (a)(1))."""
        cache_key = (child.cert.dump(), issuer.key)
        if cache_key in self.checked:
            return self.checked[cache_key]
        self.signatures += 1
        if self.signatures > MAX_SIGNATURES:
            raise _OverBudget
        problem = _signature_problem(child.cert, issuer.cert)
        self.checked[cache_key] = problem
        return problem

    def _no_issuer(self, cert: x509.Certificate) -> str:
        issuer = f"'{name_text(cert.issuer)}'"
        if self._name(cert.issuer) in self.by_subject:
            aki = (cert.authority_key_identifier or b"").hex()
            return (
                f"certificates named {issuer} are at hand, but none has the key identifier "
                f"{aki} that {label(cert)} names: it was issued by another {issuer}"
            )
        where = "embedded, supplied or trusted"
        return f"no certificate for the issuer {issuer} of {label(cert)} is {where}"


def _signature_problem(child: x509.Certificate, issuer: x509.Certificate) -> str | None:
    if child["tbs_certificate"]["signature"].dump() != child["signature_algorithm"].dump():
        return f"{label(child)} has mismatched inner and outer signature algorithms"
    try:
        verify_signature(
            issuer.public_key,
            child["signature_algorithm"],
            None,
            child["tbs_certificate"].dump(),
            child["signature_value"].native,
        )
    except (SignatureInvalid, ValueError) as exc:
        return f"the signature on {label(child)} does not verify with {label(issuer)}: {exc}"
    return None


def _validity_problem(cert: x509.Certificate, at: datetime) -> str | None:
    start, end = cert.not_valid_before, cert.not_valid_after
    if start <= at <= end:
        return None
    return (
        f"{label(cert)} is not valid at genTime {at.isoformat()} "
        f"(valid from {start.isoformat()} to {end.isoformat()})"
    )


def _issuer_problem(
    path: tuple[x509.Certificate, ...], self_issued: tuple[bool, ...], index: int
) -> str | None:
    """RFC 5280 §6.1.4 (k), (l), (m), (n) for the issuer at ``index``."""
    cert = path[index]
    is_v1_anchor = index == len(path) - 1 and cert["tbs_certificate"]["version"].native == "v1"
    if is_v1_anchor:
        return None
    if not cert.ca:
        return f"{label(cert)} issues certificates but basicConstraints cA is not set"
    usage = cert.key_usage_value
    if usage is not None and "key_cert_sign" not in usage.native:
        return f"{label(cert)} issues certificates but its keyUsage lacks keyCertSign"
    below = sum(1 for flag in self_issued[1:index] if not flag)
    limit = cert.max_path_length
    if limit is not None and below > limit:
        return f"{label(cert)} allows {limit} intermediate(s) below it, the path has {below}"
    return None


def _path_problem(
    path: tuple[x509.Certificate, ...], self_issued: tuple[bool, ...], at: datetime
) -> str | None:
    """Why ``path`` is not valid at ``at`` (``self_issued`` per certificate, from the
    names compared once by the search: asn1crypto's comparison prepares them anew)."""
    for index, cert in enumerate(path):
        problem = _validity_problem(cert, at)
        if problem is None and index > 0:
            problem = _issuer_problem(path, self_issued, index)
        if problem is None and index < len(path) - 1:
            unknown = sorted(str(e) for e in cert.critical_extensions - _UNDERSTOOD)
            if unknown:
                problem = (
                    f"could not be checked: {label(cert)} has critical extensions this "
                    f"verifier does not process: {', '.join(unknown)}"
                )
        if problem is not None:
            return problem
    return None


def validate_path(
    signer: x509.Certificate,
    pool: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    at: datetime,
) -> PathResult:
    """Find a path from ``signer`` to one of ``anchors`` that is valid at ``at``.

    ``pool`` holds untrusted candidates (embedded and caller-supplied certificates).
    A trust anchor may be the signer itself (a pinned TSA certificate). The search is
    bounded (module docstring): past the bound the answer is "no valid path", fast.
    """
    if not anchors:
        return PathResult((), "could not be checked: no trust roots were given")
    untrusted = len({c.dump() for c in pool})
    if untrusted > MAX_UNTRUSTED:
        return PathResult(
            (),
            f"{untrusted} certificates were embedded and supplied; path building "
            f"considers at most {MAX_UNTRUSTED}",
        )
    search = _Search(pool, anchors, at)
    try:
        path = search.start(signer)
    except _OverBudget:
        return PathResult(
            (),
            f"certification path building stopped at its bound ({MAX_STEPS} candidates "
            f"considered or {MAX_SIGNATURES} signatures checked) without finding a valid "
            f"path: the {untrusted} certificates embedded or supplied offer more possible "
            "paths than any legitimate chain needs (duplicated or cross-signed CA certificates)",
        )
    if path is not None:
        shown = " -> ".join(label(c) for c in path)
        return PathResult(path, f"{shown} (trusted) is valid at genTime {at.isoformat()}")
    if search.first_problem is not None:
        return PathResult((), search.first_problem)
    reason = search.dead_end or "no path to a trust root"
    return PathResult((), f"no path to a trust root: {reason}")
