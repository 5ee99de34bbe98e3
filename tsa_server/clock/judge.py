"""The clock rules (EN 319 421 and the code-signing requirements): how one poll's NTP
replies become the monitor's state, and that state a ``ClockStatus``. Pure functions:
no I/O, no clock reads; ``ntp.NtpMonitor`` feeds them.

Agreement. The sane replies of a poll go through the selection (``selection.py``): the
largest group whose offset intervals share a point are the truechimers, the others
falsetickers, dropped and named in the status. The truechimers must be a strict
majority of the sources that answered, or nobody can tell who is right and no token is
issued ("no majority"). Then the best truechimer (smallest error bound) is the sample;
if it says our clock is off (offset or bound over the limits), issuance stops at once
("offset", "error bound"): a majority, or a lone source with nobody to contradict it,
is evidence about our clock. A liar outvoted by a majority is not. Neither is a
sample whose round trip was so slow that the offset is over the limit only within the
delay's uncertainty, or whose bound is wide (a loaded network or server): while a good
sample is in force, such a poll counts as no evidence, like silence. Fewer agreeing
sources than ``min_good_servers`` is no evidence either way: the last good sample then
stays in force until it is ``max_age_s`` old ("stale"), as after silence.

Step. Wall time moving differently from monotonic time by ``STEP_LIMIT_S`` (1 s) or
more since the last good sample (settimeofday, a kernel leap second, a suspended VM)
stops issuance at once ("step"), and the stop is latched: it lasts until a fresh poll
measures the stepped clock again, even if the clock is stepped back meanwhile. A
smaller step widens the error bound. The bound also grows with the sample's age by
``drift_ppm``; past ``max_error_ms`` (the accuracy the TSA states at worst) issuance
stops ("drift").

Leap second. When a majority of the truechimers announce a leap (leap indicator 1 or
2), issuance pauses around the end of the UTC day in which they announced it: while our
clock reads within ``LEAP_HALF_WINDOW_S + error bound`` of midnight, i.e. from
23:59:59 UTC minus the bound to 00:00:01 UTC plus the bound ("leap second"). Pausing
is chosen over stating a wider accuracy: no token then carries a genTime that a
leap second (inserted, deleted, or smeared by the OS) can make ambiguous. Servers that
announce for the whole month make us pause at each midnight of it; we prefer a pause
of a few seconds at a midnight where nothing happens to guessing which one it is. The
announcement outlives the poll that saw it until its window is over, so a server that
stops announcing at midnight does not end the pause early. A kernel that inserts the
second by stepping the clock back then trips the step rule until the next poll.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta

from tsa_server.clock.base import UNKNOWN_ERROR, ClockStatus, utc_from_timestamp
from tsa_server.clock.ntp_query import NtpSample
from tsa_server.clock.selection import select
from tsa_server.clock.settings import NtpSettings

# ClockStatus.event: a fixed set, so that the operations log and alerts can rely on it.
IN_SYNC = "in sync"
NO_SAMPLE = "no sample"
STALE = "stale"
OFFSET = "offset"
ERROR_BOUND = "error bound"
NO_MAJORITY = "no majority"
STEP = "step"
DRIFT = "drift"
LEAP_SECOND = "leap second"
# Only in what on_change receives (the monitor knows the history, the rules do not).
SYNCED = "synced"  # usable for the first time
REGAINED = "regained"  # usable again after a stop
FALSETICKER = "falseticker"  # still usable, and the set of dropped sources changed
AGREEMENT = "agreement restored"  # still usable, and no source is dropped any more

STEP_LIMIT_S = 1.0
LEAP_HALF_WINDOW_S = 1.0
_DAY = 86400


@dataclass(frozen=True)
class Poll:
    samples: tuple[NtpSample, ...]  # sane replies from acceptable references
    problems: tuple[str, ...]  # servers that gave none, and why


@dataclass(frozen=True)
class ClockRefusal:
    """Evidence from the last poll that our time must not be used."""

    event: str
    reason: str
    bound: float


@dataclass(frozen=True)
class State:
    sample: NtpSample | None = None  # the last good sample
    refusal: ClockRefusal | None = None
    problems: str | None = None  # why the last poll gave no good sample
    falsetickers: tuple[NtpSample, ...] = ()  # dropped by the last poll with answers
    agreeing: int | None = None
    stepped: float = 0.0  # a step of STEP_LIMIT_S or more seen since `sample` (latched)
    leap_at: float | None = None  # POSIX time of an announced leap second (a midnight)
    leap_votes: str = ""  # "2 of 3" truechimers announced it


def judge(settings: NtpSettings, old: State, poll: Poll) -> State:
    """The state after one poll (see the module doc for the rules)."""
    problems = "; ".join(poll.problems) or None
    if not poll.samples:  # silence and broken replies are no evidence about our clock
        return replace(old, problems=problems)
    chosen = select(poll.samples)
    truechimers, answered = chosen.truechimers, len(poll.samples)
    kept = replace(old, problems=problems, falsetickers=chosen.falsetickers)
    kept = replace(kept, agreeing=len(truechimers))
    if 2 * len(truechimers) <= answered:
        listed = ", ".join(f"{s.server} {_fmt(s.offset, True)}" for s in poll.samples)
        reason = f"no majority: {len(truechimers)} of {answered} answering sources agree ({listed})"
        bound = min(s.error_bound for s in poll.samples)
        # Nobody is known to be the falseticker when nobody has a majority.
        refusal = ClockRefusal(NO_MAJORITY, reason, bound)
        return replace(kept, refusal=refusal, falsetickers=())
    best = min(truechimers, key=lambda s: s.error_bound)
    against = _against(settings, best)
    if against is not None:
        event, text = against
        if old.sample is not None and old.refusal is None and not _conclusive(settings, best):
            why = f"{best.server}: {text}, within what a round trip of {_fmt(best.delay)} can tell"
            return replace(kept, problems="; ".join((why, *poll.problems)))
        if len(settings.servers) > 1:
            text = f"{best.server}: {text}"
            if len(truechimers) > 1:
                text += f" ({len(truechimers)} of {answered} answering sources agree)"
        return replace(kept, refusal=ClockRefusal(event, text, best.error_bound))
    if len(truechimers) < settings.min_good_servers:
        need = f"{len(truechimers)} agreeing server(s), {settings.min_good_servers} needed"
        return replace(kept, problems="; ".join((need, *poll.problems)))
    leap_at, votes = _leap(settings, old, truechimers, best)
    return State(best, None, None, chosen.falsetickers, len(truechimers), 0.0, leap_at, votes)


def _against(settings: NtpSettings, sample: NtpSample) -> tuple[str, str] | None:
    if abs(sample.offset) * 1e3 > settings.max_offset_ms:
        limit = _fmt(settings.max_offset_ms / 1e3)
        return OFFSET, f"offset {_fmt(sample.offset, True)} exceeds {limit}"
    if sample.error_bound * 1e3 > settings.max_error_ms:
        limit = _fmt(settings.max_error_ms / 1e3)
        return ERROR_BOUND, f"error bound {_fmt(sample.error_bound)} exceeds {limit}"
    return None


def _leap(
    settings: NtpSettings, old: State, truechimers: tuple[NtpSample, ...], best: NtpSample
) -> tuple[float | None, str]:
    votes = sum(1 for s in truechimers if s.leap in (1, 2))
    if 2 * votes > len(truechimers):
        return end_of_utc_day(best.wall), f"{votes} of {len(truechimers)}"
    window_end = LEAP_HALF_WINDOW_S + settings.max_error_ms / 1e3
    if old.leap_at is not None and best.wall <= old.leap_at + window_end:
        return old.leap_at, old.leap_votes
    return None, ""


def _conclusive(settings: NtpSettings, sample: NtpSample) -> bool:
    """Whether the sample proves our offset is over the limit: the offset stays over it
    whichever way the round trip's delay was split (RFC 5905's clock filter likewise
    distrusts the samples of a slow round trip)."""
    return (abs(sample.offset) - sample.delay / 2) * 1e3 > settings.max_offset_ms


def end_of_utc_day(posix: float) -> float:
    """The next UTC midnight after ``posix`` (POSIX days are exactly 86400 s long)."""
    return float((math.floor(posix / _DAY) + 1) * _DAY)


def step_since_sample(state: State, wall: float, mono: float) -> float:
    """How far wall time moved from monotonic time since the last good sample."""
    sample = state.sample
    if sample is None:
        return 0.0
    return abs((wall - sample.wall) - (mono - sample.mono))


def latch_step(state: State, wall: float, mono: float) -> State:
    """The state with a step of STEP_LIMIT_S or more remembered until the next sample."""
    step = step_since_sample(state, wall, mono)
    if step >= STEP_LIMIT_S and step > state.stepped:
        return replace(state, stepped=step)
    return state


def evaluate(settings: NtpSettings, state: State, wall: float, mono: float) -> ClockStatus:
    """The status now, from the state and our wall and monotonic clocks."""
    sample = state.sample
    falsetickers = tuple(s.server for s in state.falsetickers)

    def status(usable: bool, bound: float, reason: str, event: str) -> ClockStatus:
        return ClockStatus(
            usable=usable,
            error_bound=timedelta(seconds=bound),
            reason=reason,
            last_sync=utc_from_timestamp(sample.wall) if sample else None,
            offset=timedelta(seconds=sample.offset) if sample else None,
            source=sample.server if sample else None,
            event=event,
            falsetickers=falsetickers,
            agreeing=state.agreeing,
        )

    if state.refusal is not None:
        refusal = state.refusal
        return status(False, refusal.bound, refusal.reason, refusal.event)
    if sample is None:
        detail = f" ({state.problems})" if state.problems else ""
        reason = f"no NTP sample yet{detail}"
        return ClockStatus(
            False,
            UNKNOWN_ERROR,
            reason,
            None,
            event=NO_SAMPLE,
            falsetickers=falsetickers,
            agreeing=state.agreeing,
        )
    mono_age, wall_age = mono - sample.mono, wall - sample.wall
    age = max(mono_age, wall_age, 0.0)
    step = max(abs(wall_age - mono_age), state.stepped)
    bound = sample.error_bound + settings.drift_ppm * 1e-6 * age + step
    if step >= STEP_LIMIT_S:
        reason = (
            f"system clock stepped {_fmt(step)} since the last sample: "
            "issuance stopped until the next poll measures it again"
        )
        return status(False, bound, reason, STEP)
    if age > settings.max_age_s:
        detail = f" ({state.problems})" if state.problems else ""
        reason = f"last good NTP sample is {_fmt_age(age)} s old (max {settings.max_age_s:g} s)"
        return status(False, bound, reason + detail, STALE)
    if bound * 1e3 > settings.max_error_ms:
        reason = f"error bound {_fmt(bound)} exceeds {_fmt(settings.max_error_ms / 1e3)}"
        if step > 1e-3:
            reason += f" (system clock stepped {_fmt(step)} since the last sample)"
        return status(False, bound, reason, DRIFT)
    if state.leap_at is not None:
        margin = LEAP_HALF_WINDOW_S + bound
        if abs(wall - state.leap_at) <= margin:
            at = utc_from_timestamp(state.leap_at).strftime("%Y-%m-%d %H:%M:%S UTC")
            reason = (
                f"leap second announced by {state.leap_votes} agreeing sources: issuance "
                f"paused within {_fmt(margin)} of {at}"
            )
            return status(False, bound, reason, LEAP_SECOND)
    reason = f"in sync with {sample.server} (offset {_fmt(sample.offset, True)})"
    if state.falsetickers:
        dropped = ", ".join(f"{s.server} {_fmt(s.offset, True)}" for s in state.falsetickers)
        reason += f"; falseticker(s) dropped: {dropped}"
    return status(True, bound, reason, IN_SYNC)


def _fmt(seconds: float, signed: bool = False) -> str:
    """0.0004 -> "0.4 ms", 2.1 -> "2.1 s"; three significant digits."""
    sign = "+" if signed else ""
    if abs(seconds) >= 0.9995:
        return f"{seconds:{sign}.3g} s"
    return f"{seconds * 1e3:{sign}.3g} ms"


def _fmt_age(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 100 else f"{seconds:.3g}"
