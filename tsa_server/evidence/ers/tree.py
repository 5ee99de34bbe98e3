"""RFC 4998 section 4.2 and 4.3: the hash tree over a group of data objects, each
object's reduced hash tree, and the walk from a hash value back to the root.

Building (section 4.2): the leaves are the objects' hash values, sorted in binary
ascending order (unsigned bytes, complete hash outputs); neighbours are paired, each
pair's values sorted, concatenated and hashed into the next level; a last value without
a partner goes up unchanged (a group of one is carried forward unhashed). This is the
binary tree BouncyCastle's ERS classes build and verify.

Reduced hash tree of leaf i: the first list holds the leaf and its partner (or the leaf
alone when it has none); every further list holds the partner of the node computed so
far, one list per level where that node has a partner.

Walking (section 4.3): the object's hash must be in the first list; the first list's
values, sorted and concatenated, are hashed (a list of one value is that value); the
result joins the next list, which is hashed the same way, up to the root. This reads the
n-ary trees other implementations write (three values in one list) as well as this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tsa_server.evidence.ers.asn1 import digest

__all__ = ["HashTree", "NotInTree", "node_value", "root_from"]


class NotInTree(ValueError):
    """The hash value is not in the reduced hash tree's first list."""


def node_value(algorithm: str, values: Sequence[bytes]) -> bytes:
    """The hash of one list: its values sorted ascending and concatenated, hashed; a list
    of a single value is that value (section 4.2 step 3, carried forward unhashed)."""
    if len(values) == 1:
        return values[0]
    return digest(algorithm, *sorted(values))


def root_from(algorithm: str, leaf: bytes, reduced: Sequence[Sequence[bytes]]) -> bytes:
    """Section 4.3: the root the reduced hash tree leads `leaf` to (NotInTree when
    `leaf` is not in its first list). Without a reduced tree the leaf is the root."""
    if not reduced:
        return leaf
    first = list(reduced[0])
    if leaf not in first:
        raise NotInTree("the hash value is not in the first list of the reduced hash tree")
    node = node_value(algorithm, first)
    for values in reduced[1:]:
        node = node_value(algorithm, [node, *values])
    return node


@dataclass(frozen=True)
class HashTree:
    """A binary hash tree over leaves (section 4.2), levels from the sorted leaves up."""

    algorithm: str
    levels: tuple[tuple[bytes, ...], ...]

    @classmethod
    def build(cls, algorithm: str, leaves: Sequence[bytes]) -> HashTree:
        if not leaves:
            raise ValueError("a hash tree needs at least one leaf")
        level = tuple(sorted(leaves))
        levels = [level]
        while len(level) > 1:
            up = [
                node_value(algorithm, [level[i], level[i + 1]]) for i in range(0, len(level) - 1, 2)
            ]
            if len(level) % 2:
                up.append(level[-1])  # no partner: carried forward unhashed
            level = tuple(up)
            levels.append(level)
        return cls(algorithm, tuple(levels))

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def reduced(self, leaf: bytes) -> list[list[bytes]]:
        """The reduced hash tree of `leaf` (module docstring); [] for a one-leaf tree."""
        index = self.levels[0].index(leaf)
        lists: list[list[bytes]] = []
        for depth, level in enumerate(self.levels[:-1]):
            partner = index ^ 1
            if partner < len(level):
                if depth == 0:
                    lists.append(sorted([level[index], level[partner]]))
                else:
                    lists.append([level[partner]])
            elif depth == 0:
                lists.append([level[index]])
            index //= 2
        return lists
