"""Administrators' edits of the word lists and dispute weights, as pure values.

The conf files (conf/names.toml, conf/names/*.txt) are the *base*. Edits made over the
API are an *overlay* kept in the names database (policy_store.py): durable, each one
time-stamped by this TSA, and surviving both a restart and a reload of the files. The
files are never rewritten by the server (they may be read-only or under version
control); what is in force is

    effective list   = (file words | added) - removed
    effective weight = the override if there is one, else the file's value

Words are validated like the files' words (NFKC + case-fold, the handle character set)
and bounded: non-empty, at most `shop_name_max_bytes` GBK bytes (a longer word can match
no shop name), at most `MAX_EDIT_WORDS` per edit and `MAX_LIST_WORDS` per list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from .charset import disallowed_chars, fold
from .config import METRICS, Policy, PolicyError, Weights
from .errors import InvalidNameRequest, NamesError
from .numbers import NumberError, rational
from .words import Lexicon

LISTS = ("banned", "restricted", "brands")
MAX_EDIT_WORDS = 200
MAX_LIST_WORDS = 5000
SCHEMA = "tsa.names.policy-change/1"


class EditError(InvalidNameRequest, ValueError):
    """An edit that cannot be applied as asked (bad word, unknown list, bounds)."""


class StaleVersion(NamesError):
    """The caller's If-Match is not the current version (someone else changed it)."""

    def __init__(self, current: str) -> None:
        super().__init__(f"the policy changed: current version is {current}")
        self.current = current


def _frozen(d: Mapping[str, AbstractSet[str]] | None) -> dict[str, frozenset[str]]:
    d = d or {}
    return {name: frozenset(d.get(name, frozenset())) for name in LISTS}


@dataclass(frozen=True)
class Overlay:
    """The administrators' changes against the conf files."""

    added: Mapping[str, AbstractSet[str]] = field(default_factory=dict)  # frozen on creation
    removed: Mapping[str, AbstractSet[str]] = field(default_factory=dict)
    weights: Mapping[str, Fraction] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "added", _frozen(self.added))
        object.__setattr__(self, "removed", _frozen(self.removed))
        unknown = set(self.weights) - set(METRICS)
        if unknown:
            raise EditError(f"unknown metric(s): {sorted(unknown)}")
        object.__setattr__(self, "weights", dict(self.weights))

    def to_json(self) -> dict[str, Any]:
        return {
            "added": {n: sorted(self.added[n]) for n in LISTS},
            "removed": {n: sorted(self.removed[n]) for n in LISTS},
            "weights": {m: str(v) for m, v in sorted(self.weights.items())},
        }


@dataclass(frozen=True)
class ListEdit:
    """Words to add to and remove from one list, already folded."""

    name: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


def fold_word(word: Any, policy: Policy, where: str) -> str:
    """NFKC + case-fold one word, or `EditError` saying what is wrong with it."""
    if not isinstance(word, str):
        raise EditError(f"{where}: a word must be a string")
    key = fold(word.strip())
    if not key:
        raise EditError(f"{where}: empty word")
    bad = disallowed_chars(key)
    if bad:
        shown = " ".join(f"U+{ord(c):04X}" for c in bad)
        raise EditError(f"{where}: {word!r} has characters outside the set: {shown}")
    size = len(key.encode("gbk"))
    if size > policy.shop_name_max_bytes:
        raise EditError(f"{where}: {word!r} is {size} bytes > {policy.shop_name_max_bytes}")
    return key


def list_edit(name: str, add: Any, remove: Any, policy: Policy) -> ListEdit:
    """Validate one list's edit (`add`, `remove`: lists of words, or None)."""
    if name not in LISTS:
        raise EditError(f"unknown word list {name!r}; lists are {list(LISTS)}")
    out: dict[str, tuple[str, ...]] = {}
    for op, words in (("add", add), ("remove", remove)):
        words = [] if words is None else words
        if not isinstance(words, list):
            raise EditError(f"{name}.{op} must be a list of words")
        if len(words) > MAX_EDIT_WORDS:
            raise EditError(f"{name}.{op}: at most {MAX_EDIT_WORDS} words per edit")
        folded = [fold_word(w, policy, f"{name}.{op}[{i}]") for i, w in enumerate(words)]
        out[op] = tuple(dict.fromkeys(folded))
    both = set(out["add"]) & set(out["remove"])
    if both:
        raise EditError(f"{name}: both added and removed: {sorted(both)}")
    return ListEdit(name, out["add"], out["remove"])


def weights_edit(raw: Any) -> dict[str, Fraction | None]:
    """`{metric: number | "a/b" | null}`: null drops the override (back to the file)."""
    if not isinstance(raw, dict) or not raw:
        raise EditError("weights must be a non-empty object keyed by metric")
    out: dict[str, Fraction | None] = {}
    for metric, value in raw.items():
        if metric not in METRICS:
            raise EditError(f"unknown metric {metric!r}; metrics are {list(METRICS)}")
        if value is None:
            out[metric] = None
            continue
        try:
            weight = rational(value, f"weights.{metric}")
        except NumberError as exc:
            raise EditError(str(exc)) from None
        if weight < 0 or weight > 10**6:
            raise EditError(f"weights.{metric} must be within [0, 1000000]")
        out[metric] = weight
    return out


def effective_lexicon(base: Lexicon, overlay: Overlay) -> Lexicon:
    lists = {n: (getattr(base, n) | overlay.added[n]) - overlay.removed[n] for n in LISTS}
    return Lexicon(**lists)


def effective_weights(base: Weights, overlay: Overlay) -> Weights:
    values = {m: overlay.weights.get(m, getattr(base, m)) for m in METRICS}
    try:
        return Weights(**values)
    except PolicyError as exc:
        raise EditError(str(exc)) from None


def effective_policy(base: Policy, overlay: Overlay) -> Policy:
    weights = effective_weights(base.disputes.weights, overlay)
    return replace(base, disputes=replace(base.disputes, weights=weights))


def apply_edits(
    overlay: Overlay,
    base: Lexicon,
    edits: tuple[ListEdit, ...],
    weights: Mapping[str, Fraction | None] | None = None,
) -> Overlay:
    """The overlay after `edits`; `EditError` when a word to add is already in force,
    one to remove is not, or a list would grow past `MAX_LIST_WORDS`."""
    added = {n: set(overlay.added[n]) for n in LISTS}
    removed = {n: set(overlay.removed[n]) for n in LISTS}
    current = effective_lexicon(base, overlay)
    for e in edits:
        words = getattr(current, e.name)
        present = sorted(w for w in e.add if w in words)
        if present:
            raise EditError(f"{e.name}: already listed: {present}")
        missing = sorted(w for w in e.remove if w not in words)
        if missing:
            raise EditError(f"{e.name}: not listed: {missing}")
        in_file = getattr(base, e.name)
        for w in e.add:
            (removed[e.name].discard if w in in_file else added[e.name].add)(w)
        for w in e.remove:
            (removed[e.name].add if w in in_file else added[e.name].discard)(w)
        if len(words) + len(e.add) - len(e.remove) > MAX_LIST_WORDS:
            raise EditError(f"{e.name}: at most {MAX_LIST_WORDS} words")
    new_weights = dict(overlay.weights)
    for metric, value in (weights or {}).items():
        if value is None:
            new_weights.pop(metric, None)
        else:
            new_weights[metric] = value
    return Overlay(added, removed, new_weights)


def content_digest(lexicon: Lexicon, weights: Weights) -> str:
    """SHA-256 of what is in force: the three lists and the weights."""
    body = {
        **{n: sorted(getattr(lexicon, n)) for n in LISTS},
        "weights": {m: str(getattr(weights, m)) for m in METRICS},
    }
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def etag(version: int, digest: str) -> str:
    """The entity tag of the policy: the change count plus what is in force, so a reload
    of the files that changes a list changes the tag too."""
    return f'"{version}-{digest[:16]}"'


def canonical_bytes(obj: Any) -> bytes:
    return json.dumps(
        obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def change_record(
    *,
    version: int,
    at: str,
    by: Mapping[str, str],
    edits: tuple[ListEdit, ...],
    weights: Mapping[str, Fraction | None] | None,
    digest: str,
) -> dict[str, Any]:
    """The record of one change (who changed what, and what is now in force)."""
    return {
        "schema": SCHEMA,
        "version": version,
        "at": at,
        "by": dict(by),
        "words": {
            e.name: {"add": list(e.add), "remove": list(e.remove)}
            for e in edits
            if e.add or e.remove
        },
        "weights": {m: None if v is None else str(v) for m, v in (weights or {}).items()},
        "in_force": digest,
    }
