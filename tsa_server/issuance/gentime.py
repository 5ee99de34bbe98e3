"""genTime and its stated accuracy, from the clock's reading and error bound."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from tsa_server.errors import FailureInfo, RequestRejected

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def gen_time(
    now: datetime, error_bound: timedelta, last_gen_ms: int, max_accuracy: timedelta
) -> tuple[int, int]:
    """genTime in ms (never before `last_gen_ms`) and the accuracy in µs (whole
    milliseconds) that honestly covers it; timeNotAvailable when that accuracy is worse
    than the policy's `max_accuracy`."""
    now_us = (now - UNIX_EPOCH) // _US
    gen_ms = max(now_us // 1000, last_gen_ms)
    # Truncating to ms and holding genTime up while the clock catches up both widen
    # the interval the true time can be in; the stated accuracy must cover them.
    held_back_us = max(0, gen_ms * 1000 - now_us)
    accuracy_us = math.ceil(error_bound / _US) + 1000 + held_back_us
    accuracy_us = -(-accuracy_us // 1000) * 1000  # whole milliseconds
    if accuracy_us > max_accuracy / _US:
        raise RequestRejected(
            FailureInfo.TIME_NOT_AVAILABLE, "time accuracy worse than the TSA policy allows"
        )
    return gen_ms, accuracy_us
