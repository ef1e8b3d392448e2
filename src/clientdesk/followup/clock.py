"""Business-time arithmetic for follow-up clocks: pure functions of a calendar and an instant.

A window of N business hours starting at an instant ends at the earliest instant by which N hours
of open time have elapsed. Open time is counted in real elapsed time between each day's local
opening and closing instants (so a day with a DST change inside its hours is an hour shorter or
longer), local days come from the calendar's zone (zoneinfo), and closed weekdays and public
holidays count nothing. A result always lies within a day's open hours (a window that starts
while closed begins at the next opening), never on a holiday.
"""

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar open at least one day a week reaches any window within a few years, even with long
# runs of holidays; this bounds the walk for a calendar that is never open.
MAX_DAYS = 366 * 5
_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class NeverOpen(ValueError):
    """The calendar has no open time within MAX_DAYS of the start."""


@dataclass(frozen=True)
class BusinessCalendar:
    zone: ZoneInfo
    # Weekday (0 = Monday) to local (opening, closing); a weekday without an entry is closed.
    hours: Mapping[int, tuple[time, time]]
    holidays: Container[date] = field(default_factory=frozenset)

    def open_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC instants `day` opens and closes, or None when it is closed."""
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


def business_add(calendar: BusinessCalendar, start: datetime, hours: float) -> datetime:
    """The instant `hours` business hours after `start` (timezone-aware), in UTC."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if hours < 0:
        raise ValueError("a window cannot be negative")
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(UTC)
    # Start a day early: an instant just after local midnight may still be inside yesterday's
    # hours only in zones where hours cross midnight, which the calendar does not allow, but
    # starting early costs one iteration and keeps the walk obviously complete.
    day = _local_day(calendar, cursor) - timedelta(days=1)
    for _ in range(MAX_DAYS):
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
