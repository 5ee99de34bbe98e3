"""What the registry checks against: the conf files plus the administrators' overlay.

`PolicyAdmin` is the registry's lexicon source (`lexicon()`) and effective policy
(`policy`). `edit` applies an administrator's change with optimistic concurrency
(`if_match` must be the current entity tag, else `StaleVersion`), time-stamps the
change record with this TSA, appends it to the operations log (``name_policy``) and
commits the overlay with the change in one SQLite transaction; only then does the
change take effect. `reload` re-reads the files (the overlay stays on top).
The caller serialises `edit` with the registry's operations (NamesService lock).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .config import Policy, Weights
from .policy_edits import (
    LISTS,
    ListEdit,
    Overlay,
    StaleVersion,
    apply_edits,
    canonical_bytes,
    change_record,
    content_digest,
    effective_lexicon,
    effective_policy,
    etag,
)
from .policy_store import PolicyChange, PolicyStore
from .words import Lexicon, LexiconSource


@dataclass(frozen=True)
class PolicyView:
    """What is in force, with the version and entity tag an edit must quote."""

    version: int
    etag: str
    lexicon: Lexicon
    weights: Weights
    overlay: Overlay

    def words_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "etag": self.etag,
            "lists": {n: sorted(getattr(self.lexicon, n)) for n in LISTS},
            "overlay": {
                "added": {n: sorted(self.overlay.added[n]) for n in LISTS},
                "removed": {n: sorted(self.overlay.removed[n]) for n in LISTS},
            },
        }

    def weights_json(self) -> dict[str, Any]:
        from .config import METRICS

        return {
            "version": self.version,
            "etag": self.etag,
            "weights": {m: str(getattr(self.weights, m)) for m in METRICS},
            "overridden": sorted(self.overlay.weights),
        }


Stamper = Callable[[bytes], Awaitable[Any]]  # -> timestamping.Stamp (token, gen_time)


class PolicyAdmin:
    """The effective word lists and weights, editable by administrators."""

    def __init__(
        self,
        policy: Policy,
        source: LexiconSource | None,
        store: PolicyStore,
        on_change: Callable[[Policy], None] = lambda p: None,
    ) -> None:
        self._base_policy = policy
        self._source = source
        self._empty = Lexicon()
        self.store = store
        self._on_change = on_change
        self._version, self._overlay = store.load()
        self._refresh()

    # ------------------------------------------------------------ in force
    def _base_lexicon(self) -> Lexicon:
        return self._source.current() if self._source is not None else self._empty

    def _refresh(self) -> None:
        self._lexicon = effective_lexicon(self._base_lexicon(), self._overlay)
        self._policy = effective_policy(self._base_policy, self._overlay)
        digest = content_digest(self._lexicon, self._policy.disputes.weights)
        self._etag = etag(self._version, digest)
        self._digest = digest
        self._on_change(self._policy)

    def lexicon(self) -> Lexicon:
        """The registry's lexicon callable."""
        return self._lexicon

    @property
    def policy(self) -> Policy:
        return self._policy

    def view(self) -> PolicyView:
        return PolicyView(
            self._version, self._etag, self._lexicon, self._policy.disputes.weights, self._overlay
        )

    def reload(self) -> PolicyView:
        """Re-read the word-list files; a broken file raises and changes nothing."""
        if self._source is not None:
            self._source.reload()
        self._refresh()
        return self.view()

    # ---------------------------------------------------------------- edit
    def check_version(self, if_match: str) -> None:
        tags = [t.strip() for t in if_match.split(",")]
        if "*" not in tags and self._etag not in tags:
            raise StaleVersion(self._etag)

    async def edit(
        self,
        *,
        if_match: str,
        by: Mapping[str, str],
        at: str,
        edits: tuple[ListEdit, ...] = (),
        weights: Mapping[str, Fraction | None] | None = None,
        stamp: Stamper,
        ops: Any | None,
    ) -> PolicyChange:
        """Apply one change (see the module docstring). Raises `StaleVersion`,
        `policy_edits.EditError`, or what `stamp` raises when no token is given."""
        self.check_version(if_match)
        overlay = apply_edits(self._overlay, self._base_lexicon(), edits, weights)
        lexicon = effective_lexicon(self._base_lexicon(), overlay)
        policy = effective_policy(self._base_policy, overlay)  # EditError: bad weights
        version = self._version + 1
        record = change_record(
            version=version,
            at=at,
            by=by,
            edits=edits,
            weights=weights,
            digest=content_digest(lexicon, policy.disputes.weights),
        )
        canonical = canonical_bytes(record)
        stamped = await stamp(canonical)
        digest = hashlib.sha256(canonical).hexdigest()
        index = None
        if ops is not None:
            index = ops.record(
                "name_policy",
                version=version,
                by=dict(by),
                words=record["words"],
                weights=record["weights"],
                sha256=digest,
            )
        change = PolicyChange(
            version=version,
            at=at,
            by_org=by.get("org", ""),
            by_key=by.get("key", ""),
            canonical=canonical,
            sha256=digest,
            token=stamped.token,
            gen_time=stamped.gen_time,
            ops_index=index,
        )
        self.store.commit(change, overlay)
        self._version, self._overlay = version, overlay
        self._refresh()
        return change
