"""When to try a delivery again."""

import random
from datetime import timedelta

from django.conf import settings

# Seconds before attempt n+1 (the first attempt is immediate): 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 10 h. After the eighth failed attempt the delivery has failed.
SCHEDULE = [0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
JITTER = 0.2
# Throttled or timed-out receivers get at least this long (Svix's rule).
SLOW_DOWN_SECONDS = 60


def next_delay(
    *, step: int, retry_after: float | None = None, slow_down: bool = False
) -> timedelta | None:
    """Delay before the attempt after schedule position `step` failed, or None if none is left.

    `Retry-After` is honoured between 1× and 2× the scheduled delay, so a receiver can slow us
    down but neither stall a message for days nor make us hammer it.
    """
    if step + 1 >= len(SCHEDULE):
        return None
    scheduled = float(SCHEDULE[step + 1])
    if slow_down:
        scheduled = max(scheduled, SLOW_DOWN_SECONDS)
    delay = scheduled * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - jitter, not secrecy
    if retry_after is not None:
        delay = min(max(retry_after, scheduled), 2 * scheduled)
    return timedelta(seconds=delay * settings.DELIVERY_RETRY_SCALE)
