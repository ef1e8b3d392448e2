"""Business-time arithmetic for follow-up clocks: pure functions of a calendar and an instant.

A window of N business hours starting at an instant ends at the earliest instant by which N hours
of open time have elapsed. Open time is counted in real elapsed time between each day's local
opening and closing instants (so a day with a DST change inside its hours is an hour shorter or
longer), local days come from the calendar's zone (zoneinfo), and closed weekdays and public
holidays count nothing. A result always lies within a day's open hours (a window that starts
while closed begins at the next opening), never on a holiday.

Every walk over days is bounded (MAX_DAYS, or the caller's tighter bound): a calendar that is
never open, or a window too long for its hours, ends the walk with NeverOpen instead of looping.
"""

import math
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A stored policy is checked to end its windows within a year (followup/policy.py); the walk
# allows five, so another year's holidays cannot end it early, and still ends for a calendar
# that is never open.
MAX_DAYS = 366 * 5
_JUST_AFTER = timedelta(microseconds=1)
_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class NeverOpen(ValueError):
    """The window does not end within the walk's bound (MAX_DAYS unless the caller says)."""


@dataclass(frozen=True)
class BusinessCalendar:
    zone: ZoneInfo
    # Weekday (0 = Monday) to local (opening, closing); a weekday without an entry is closed.
    hours: Mapping[int, tuple[time, time]]
    holidays: Container[date] = field(default_factory=frozenset)
    # Days already worked out: window_fits walks the same days from hundreds of starts.
    _intervals: dict[date, tuple[datetime, datetime] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def open_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC instants `day` opens and closes, or None when it is closed."""
        try:
            return self._intervals[day]
        except KeyError:
            interval = self._intervals[day] = self._open_interval(day)
            return interval

    def _open_interval(self, day: date) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.hours or day in self.holidays:
            return None
        opens, closes = self.hours[day.weekday()]
        start = datetime.combine(day, opens, tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day, closes, tzinfo=self.zone).astimezone(UTC)
        if end <= start:  # a DST jump swallowed the whole day's hours
            return None
        return start, end


def _local_day(calendar: BusinessCalendar, instant: datetime) -> date:
    return instant.astimezone(calendar.zone).date()


def business_add(
    calendar: BusinessCalendar, start: datetime, hours: float, *, max_days: int = MAX_DAYS
) -> datetime:
    """The instant `hours` business hours after `start` (timezone-aware), in UTC; NeverOpen when
    the window does not end within `max_days` local days."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if not 0 <= hours < math.inf:  # also refuses NaN, which compares false with everything
        raise ValueError("a window must be a finite number of hours, not negative")
    if hours > 24 * (max_days + 2):
        raise NeverOpen("the window is longer than the days it may be counted in")
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(UTC)
    # Start a day early: an instant just after local midnight may still be inside yesterday's
    # hours only in zones where hours cross midnight, which the calendar does not allow, but
    # starting early costs one iteration and keeps the walk obviously complete.
    day = _local_day(calendar, cursor) - timedelta(days=1)
    for _ in range(max_days + 1):
        interval = calendar.open_interval(day)
        day += timedelta(days=1)
        if interval is None:
            continue
        opens, closes = interval
        if cursor > closes:
            continue
        cursor = max(cursor, opens)
        available = closes - cursor
        if remaining <= available:
            return cursor + remaining
        remaining -= available
        cursor = closes
    raise NeverOpen("the business calendar has no open hours to count the window in")


def window_fits(
    calendar: BusinessCalendar, hours: float, *, start: datetime, days: int, within: timedelta
) -> datetime | None:
    """The first instant in the `days` local days from `start` from which `hours` business hours
    do not end within `within`, or None when the window ends in time from every instant.

    The wait from an instant to its due time is longest just after a day closes: while open, the
    due time moves on with the instant; while closed, it stands still as the instant moves. So
    `start` and the instant just after each closing are the only instants to try (at the closing
    itself a window of 0 is still due at once), and each try is one bounded business_add."""
    start = start.astimezone(UTC)
    bound = within.days + 2  # local days a walk of `within` can touch
    day = _local_day(calendar, start)
    candidates = [start]
    for _ in range(days + 1):
        interval = calendar.open_interval(day)
        day += timedelta(days=1)
        if interval is not None and interval[1] >= start:
            candidates.append(interval[1] + _JUST_AFTER)
    for candidate in candidates:
        try:
            due = business_add(calendar, candidate, hours, max_days=bound)
        except NeverOpen:
            return candidate
        if due - candidate > within:
            return candidate
    return None


def business_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Open time between two instants (zero when `end` is not after `start`)."""
    if end <= start:
        return timedelta(0)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    day = _local_day(calendar, start) - timedelta(days=1)
    last = _local_day(calendar, end)
    while day <= last:
        interval = calendar.open_interval(day)
        day += timedelta(days=1)
        if interval is None:
            continue
        lo, hi = max(interval[0], start), min(interval[1], end)
        if hi > lo:
            total += hi - lo
    return total


def is_open(calendar: BusinessCalendar, instant: datetime) -> bool:
    """Whether `instant` lies within a day's open hours (opening and closing included)."""
    instant = instant.astimezone(UTC)
    day = _local_day(calendar, instant)
    interval = calendar.open_interval(day)
    return interval is not None and interval[0] <= instant <= interval[1]


def parse_hours(business_hours: Mapping[str, object]) -> dict[int, tuple[time, time]]:
    """`{"mon": ["09:00", "17:00"], "sat": null, ...}` to weekday → (opening, closing).

    Raises ValueError naming the day for anything else."""
    unknown = set(business_hours) - set(WEEKDAYS)
    if unknown:
        raise ValueError(f"unknown day {sorted(unknown)[0]!r}; use mon, tue, ... sun")
    parsed: dict[int, tuple[time, time]] = {}
    for index, name in enumerate(WEEKDAYS):
        value = business_hours.get(name)
        if value is None:
            continue
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, str) and _HH_MM.fullmatch(v) for v in value)
        ):
            raise ValueError(f'{name}: give [opening, closing] as "HH:MM" times, or null')
        opens, closes = (time.fromisoformat(v) for v in value)
        if opens >= closes:
            raise ValueError(f"{name}: opening must come before closing on the same day")
        parsed[index] = (opens, closes)
    if not parsed:
        raise ValueError("open at least one day a week")
    return parsed
