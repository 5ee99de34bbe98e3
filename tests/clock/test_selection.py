"""The agreement among sources (clock/selection.py) on hand-made samples: intervals of
offset +- root distance, the largest group sharing a point wins."""

from __future__ import annotations

from tsa_server.clock.ntp_query import NtpSample
from tsa_server.clock.selection import distance, select


def sample(name: str, offset: float, root_dispersion: float = 0.001) -> NtpSample:
    return NtpSample(
        server=name,
        offset=offset,
        delay=0.0,
        root_delay=0.0,
        root_dispersion=root_dispersion,
        precision=0.0,
        stratum=2,
        error_bound=abs(offset) + root_dispersion,
        wall=0.0,
        mono=0.0,
    )


def names(samples: tuple[NtpSample, ...]) -> list[str]:
    return [s.server for s in samples]


def test_distance_is_the_bound_without_the_offset() -> None:
    assert distance(sample("a", -0.5, 0.002)) == 0.002


def test_a_liar_is_a_falseticker() -> None:
    chosen = select((sample("a", 0.0), sample("liar", 5.0), sample("b", 0.0015)))
    assert names(chosen.truechimers) == ["a", "b"]
    assert names(chosen.falsetickers) == ["liar"]


def test_wide_intervals_agree_with_both_sides() -> None:
    # "wide" overlaps a and b, which do not overlap each other: the best point is shared
    # by two intervals (a and wide, or wide and b); the first found wins.
    chosen = select((sample("a", 0.0), sample("wide", 0.01, 0.01), sample("b", 0.02)))
    assert names(chosen.truechimers) == ["a", "wide"]
    assert len(chosen.truechimers) == 2


def test_two_liars_that_agree_outvote_one_honest_source() -> None:
    chosen = select((sample("honest", 0.0), sample("l1", 5.0), sample("l2", 5.0005)))
    assert names(chosen.truechimers) == ["l1", "l2"]
    assert names(chosen.falsetickers) == ["honest"]


def test_nobody_agrees() -> None:
    chosen = select((sample("a", 0.0), sample("b", 1.0), sample("c", -1.0)))
    assert len(chosen.truechimers) == 1 and len(chosen.falsetickers) == 2


def test_one_source_agrees_with_itself() -> None:
    chosen = select((sample("only", 3.0),))
    assert names(chosen.truechimers) == ["only"] and chosen.falsetickers == ()


def test_no_samples() -> None:
    assert select(()) == select(())
    assert select(()).truechimers == ()
