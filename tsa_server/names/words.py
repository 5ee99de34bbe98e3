"""Word lists (banned, restricted, famous brands) and word-break segmentation (H-5, H-6, H-9).

Lists are data files administrators edit: UTF-8, one word per line, `#` starts a
comment. Words are stored folded (NFKC + case-fold) so every test is a comparison of
folded text. `LexiconSource` re-reads the files on `reload()`; a broken file leaves the
previous lists in force.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tsa_server.errors import ConfigError

from .charset import disallowed_chars, fold


class WordListError(ConfigError):
    """A word list file is unreadable or holds a word outside the character set."""


def _folded_words(words: Iterable[str], origin: str) -> frozenset[str]:
    out: set[str] = set()
    for word in words:
        key = fold(word.strip())
        if not key:
            raise WordListError(f"{origin}: empty word")
        bad = disallowed_chars(key)
        if bad:
            raise WordListError(f"{origin}: word {word!r} has characters outside the set {bad}")
        out.add(key)
    return frozenset(out)


def parse_word_list(text: str, origin: str = "<text>") -> frozenset[str]:
    """Parse the file format: one word per line, `#` to end of line is a comment."""
    words: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.split("#", 1)[0].strip()
        if word:
            words.append((number, word))
    out: set[str] = set()
    for number, word in words:
        out |= _folded_words([word], f"{origin}:{number}")
    return frozenset(out)


def load_word_list(path: Path) -> frozenset[str]:
    """Read and parse one word list file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WordListError(f"{path}: {exc}") from exc
    return parse_word_list(text, str(path))


@dataclass(frozen=True)
class Lexicon:
    """The three folded word sets the name rules consult."""

    banned: frozenset[str] = frozenset()
    restricted: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()
    _max_restricted: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("banned", "restricted", "brands"):
            object.__setattr__(self, name, _folded_words(getattr(self, name), name))
        longest = max((len(w) for w in self.restricted), default=0)
        object.__setattr__(self, "_max_restricted", longest)

    @classmethod
    def load(cls, banned: Path, restricted: Path, brands: Path) -> Lexicon:
        return cls(load_word_list(banned), load_word_list(restricted), load_word_list(brands))

    def find_banned(self, text: str) -> str | None:
        """H-5: the first banned word occurring anywhere in `text` (substring test)."""
        return _first_occurrence(fold(text), self.banned)

    def find_brand(self, text: str, *, exact: bool = False) -> str | None:
        """H-9: a famous brand the text is (exact) or contains (default)."""
        key = fold(text)
        if exact:
            return key if key in self.brands else None
        return _first_occurrence(key, self.brands)

    def restricted_cover(self, text: str) -> tuple[str, ...] | None:
        """H-6: a segmentation of `text` entirely into restricted words, or None."""
        return segment(fold(text), self.restricted, self._max_restricted)


def _first_occurrence(text: str, words: frozenset[str]) -> str | None:
    """The word found at the earliest position; the longest one at that position."""
    hits = [(text.find(w), -len(w), w) for w in words if w in text]
    return min(hits)[2] if hits else None


def segment(text: str, words: frozenset[str], max_len: int | None = None) -> tuple[str, ...] | None:
    """Word-break DP: split `text` completely into `words` with the fewest pieces.

    Returns None when no complete split exists (also for empty `text`). Among splits
    with the fewest pieces, longer leading words win, so the result is deterministic.
    """
    n = len(text)
    if n == 0 or not words:
        return None
    longest = max_len or max(len(w) for w in words)
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[n] = ()
    for i in range(n - 1, -1, -1):
        for size in range(min(longest, n - i), 0, -1):
            rest = best[i + size]
            piece = text[i : i + size]
            if rest is None or piece not in words:
                continue
            candidate = (piece, *rest)
            current = best[i]
            if current is None or len(candidate) < len(current):
                best[i] = candidate
    return best[0]


class LexiconSource:
    """The current lexicon, loaded from three files and reloadable by administrators."""

    def __init__(self, banned: Path, restricted: Path, brands: Path):
        self._paths = (Path(banned), Path(restricted), Path(brands))
        self._lock = threading.Lock()
        self._current = Lexicon.load(*self._paths)

    def current(self) -> Lexicon:
        return self._current

    def reload(self) -> Lexicon:
        """Re-read all three files; on error the old lexicon stays and the error is raised."""
        fresh = Lexicon.load(*self._paths)
        with self._lock:
            self._current = fresh
        return fresh
