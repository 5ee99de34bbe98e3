"""Agreement among NTP sources: which of one poll's samples tell the same time.

Each sample says the true offset ``UTC - our clock`` lies in the interval
``offset +- distance``, where ``distance`` is the sample's root distance: half the
round trip (whatever the path asymmetry), the server's own distance from UTC (root
delay / 2 + root dispersion) and its timestamp precision. That is the sample's error
bound without ``|offset|``: the bound is the farthest that interval reaches from zero.

A correct source's interval contains the true offset, so the correct sources'
intervals all share a point. The selection (Marzullo's algorithm, the simple form of
RFC 5905 section 11.2.1, without its tolerance for falsetickers inside the
intersection) keeps the largest set of sources whose intervals share a point: the
truechimers. The others are falsetickers. With a tie between two disjoint groups
neither is larger than half, so the caller's majority rule refuses both.
"""

from __future__ import annotations

from dataclasses import dataclass

from tsa_server.clock.ntp_query import NtpSample


@dataclass(frozen=True)
class SourceSelection:
    truechimers: tuple[NtpSample, ...]  # the largest group that agrees, in poll order
    falsetickers: tuple[NtpSample, ...]  # everyone else, in poll order


def distance(sample: NtpSample) -> float:
    """Half-width of the sample's interval around its offset (root distance)."""
    return sample.delay / 2 + sample.root_delay / 2 + sample.root_dispersion + sample.precision


def select(samples: tuple[NtpSample, ...]) -> SourceSelection:
    """The largest set of samples whose offset intervals share a point."""
    intervals = [(s.offset - distance(s), s.offset + distance(s)) for s in samples]
    best: list[int] = []
    # The points shared by the most intervals include the lower end of one of them.
    for low, _ in intervals:
        members = [i for i, (lo, hi) in enumerate(intervals) if lo <= low <= hi]
        if len(members) > len(best):
            best = members
    chosen = set(best)
    return SourceSelection(
        tuple(s for i, s in enumerate(samples) if i in chosen),
        tuple(s for i, s in enumerate(samples) if i not in chosen),
    )
