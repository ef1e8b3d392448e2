"""Business-time arithmetic: properties over random calendars and instants, and worked examples
across a weekend, a DST change and a holiday."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clientdesk.followup.clock import (
    BusinessCalendar,
    NeverOpen,
    business_add,
    business_between,
    is_open,
    parse_hours,
    window_fits,
)
from clientdesk.followup.policy import _Holidays

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_9_TO_5 = {d: (time(9), time(17)) for d in range(5)}
GERMANY = BusinessCalendar(zone=BERLIN, hours=WEEKDAYS_9_TO_5, holidays=_Holidays("DE"))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


zones = st.sampled_from(
    [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "UTC",
        "America/Santiago",
        "Pacific/Chatham",
    ]
)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    hours = {}
    for day in range(7):
        if draw(st.booleans()):
            # At least an hour a week open, so every window below fits in the walk's bound.
            opens = draw(st.integers(0, 22 * 4))
            closes = draw(st.integers(opens + 4, 24 * 4 - 1))
            hours[day] = (time(opens // 4, opens % 4 * 15), time(closes // 4, closes % 4 * 15))
    if not hours:
        hours[draw(st.integers(0, 6))] = (time(9), time(17))
    holidays = draw(
        st.frozensets(
            st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)), max_size=40
        )
    )
    return BusinessCalendar(zone=ZoneInfo(draw(zones)), hours=hours, holidays=holidays)


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
# Up to 200 business hours: five working weeks, or years of a calendar open an hour a week.
windows = st.floats(min_value=0, max_value=200, allow_nan=False)
halves = st.floats(min_value=0, max_value=100, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(calendar=calendars(), start=instants, hours=windows)
def test_due_time_is_inside_business_hours_and_never_on_a_holiday(calendar, start, hours):
    due = business_add(calendar, start, hours)
    assert due >= start
    assert is_open(calendar, due)
    assert due.astimezone(calendar.zone).date() not in calendar.holidays


@settings(max_examples=300, deadline=None)
@given(calendar=calendars(), start=instants, hours=windows)
def test_exactly_the_window_of_open_time_elapses(calendar, start, hours):
    due = business_add(calendar, start, hours)
    elapsed = business_between(calendar, start, due)
    assert abs(elapsed - timedelta(hours=hours)) < timedelta(microseconds=2)


@settings(max_examples=200, deadline=None)
@given(calendar=calendars(), start=instants, first=halves, second=halves)
def test_windows_add_up(calendar, start, first, second):
    """Counting a window in two parts ends where counting it at once does (the earliest
    instant, so a part that ends at closing time continues from there)."""
    whole = business_add(calendar, start, first + second)
    parts = business_add(calendar, business_add(calendar, start, first), second)
    assert abs(whole - parts) < timedelta(microseconds=4)


@settings(max_examples=200, deadline=None)
@given(calendar=calendars(), start=instants, shorter=halves, extra=halves)
def test_a_longer_window_is_never_due_earlier(calendar, start, shorter, extra):
    assert business_add(calendar, start, shorter) <= business_add(calendar, start, shorter + extra)


def test_friday_afternoon_plus_an_hour_is_monday_morning():
    assert business_add(GERMANY, berlin(2026, 11, 27, 16, 30), 1) == berlin(2026, 11, 30, 9, 30)


def test_zero_window_inside_hours_is_now_and_outside_is_the_next_opening():
    assert business_add(GERMANY, berlin(2026, 12, 1, 11, 0), 0) == berlin(2026, 12, 1, 11, 0)
    assert business_add(GERMANY, berlin(2026, 11, 28, 11, 0), 0) == berlin(2026, 11, 30, 9, 0)
    assert business_add(GERMANY, berlin(2026, 12, 1, 17, 0), 0) == berlin(2026, 12, 1, 17, 0)


def test_window_across_weekend_dst_change_and_holiday():
    # Fri 23 Oct 2026 15:00 CEST; Sun 25 Oct clocks go back; Mon 26 Oct is not a German holiday,
    # so: 2 h Friday, 8 h Monday (now CET), 8 h Tuesday, 2 h Wednesday -> Wed 28 Oct 11:00 CET.
    due = business_add(GERMANY, berlin(2026, 10, 23, 15, 0), 20)
    assert due == berlin(2026, 10, 28, 11, 0)
    assert due.astimezone(BERLIN).utcoffset() == timedelta(hours=1)
    # Thu 24 Dec 16:00 + 2 h: Christmas Day and Boxing Day (Fri, Sat), Sunday -> Mon 28 10:00.
    assert business_add(GERMANY, berlin(2026, 12, 24, 16, 0), 2) == berlin(2026, 12, 28, 10, 0)
    # Spring forward on Sun 29 Mar 2026: Fri 27 16:00 + 3 h = Mon 30 11:00 CEST (UTC+2).
    due = business_add(GERMANY, berlin(2026, 3, 27, 16, 0), 3)
    assert due == berlin(2026, 3, 30, 11, 0)
    assert due.astimezone(UTC).hour == 9


def test_hours_spanning_the_dst_jump_count_real_time():
    # Open 01:00-04:00 every day: on the night clocks go forward only 2 h pass.
    calendar = BusinessCalendar(zone=BERLIN, hours={d: (time(1), time(4)) for d in range(7)})
    assert business_between(
        calendar, berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 29, 23, 0)
    ) == timedelta(hours=2)
    assert business_between(
        calendar, berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 25, 23, 0)
    ) == timedelta(hours=4)


def test_multi_week_window():
    # 80 business hours = two working weeks of 40 h from Monday 09:00.
    assert business_add(GERMANY, berlin(2026, 11, 2, 9, 0), 80) == berlin(2026, 11, 13, 17, 0)


def test_a_calendar_closed_for_years_is_an_error_not_a_hang():
    every_day = frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(366 * 6))
    calendar = BusinessCalendar(zone=BERLIN, hours=WEEKDAYS_9_TO_5, holidays=every_day)
    with pytest.raises(NeverOpen):
        business_add(calendar, berlin(2026, 1, 1, 9, 0), 1)


def test_naive_and_negative_inputs_are_refused():
    with pytest.raises(ValueError, match="aware"):
        business_add(GERMANY, datetime(2026, 1, 1, 9, 0), 1)
    with pytest.raises(ValueError, match="negative"):
        business_add(GERMANY, berlin(2026, 1, 1, 9, 0), -1)


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"mon": ["17:00", "09:00"]}, "before closing"),
        ({"mon": ["9", "17:00:00+01:00"]}, "mon"),
        ({"moon": ["09:00", "17:00"]}, "unknown day"),
        ({"mon": "09:00-17:00"}, "mon"),
        ({"mon": None}, "at least one day"),
        ({"tue": ["09:00", "<script>"]}, "tue"),
        ({"wed": ["09:00\x00", "17:00"]}, "wed"),
    ],
)
def test_business_hours_that_make_no_sense_are_refused(hours, message):
    with pytest.raises(ValueError, match=message):
        parse_hours(hours)


@st.composite
def sparse_calendars(draw: st.DrawFn) -> BusinessCalendar:
    """Calendars open anywhere from nothing to every day, with holidays that may close all of
    it: window_fits must tell which windows they can meet."""
    hours = {}
    for day in draw(st.sets(st.integers(0, 6), max_size=7)):
        opens = draw(st.integers(0, 22 * 4))
        closes = draw(st.integers(opens + 1, 24 * 4 - 1))
        hours[day] = (time(opens // 4, opens % 4 * 15), time(closes // 4, closes % 4 * 15))
    start = date(2026, 1, 1)
    holidays = draw(
        st.one_of(
            st.frozensets(st.dates(min_value=start, max_value=date(2026, 4, 30)), max_size=60),
            # Everything for a stretch somewhere in the span: a long closure.
            st.tuples(st.integers(0, 30), st.integers(0, 30)).map(
                lambda span: frozenset(start + timedelta(days=span[0] + k) for k in range(span[1]))
            ),
        )
    )
    return BusinessCalendar(zone=ZoneInfo(draw(zones)), hours=hours, holidays=holidays)


@settings(max_examples=150, deadline=None)
@given(
    calendar=sparse_calendars(),
    hours=st.floats(min_value=0, max_value=40, allow_nan=False),
    offsets=st.lists(st.floats(min_value=0, max_value=30 * 24), min_size=1, max_size=40),
)
def test_window_fits_agrees_with_the_windows_it_promises(calendar, hours, offsets):
    """When window_fits says a window fits, it does from every instant of the span; when it
    names an instant, the window from there really does not end in time."""
    start, within = datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=10)
    unmet = window_fits(calendar, hours, start=start, days=30, within=within)
    if unmet is None:
        for offset in offsets:
            instant = start + timedelta(hours=offset)
            assert business_add(calendar, instant, hours) - instant <= within
    else:
        assert start <= unmet <= start + timedelta(days=32)
        try:
            due = business_add(calendar, unmet, hours, max_days=within.days + 2)
        except NeverOpen:
            return
        assert due - unmet > within


def test_an_hour_on_sundays_meets_a_short_window_but_not_300_hours():
    sundays = BusinessCalendar(zone=BERLIN, hours={6: (time(10), time(11))})
    start, year = berlin(2026, 12, 1, 12, 0), timedelta(days=366)
    assert window_fits(sundays, 40, start=start, days=366, within=year) is None
    assert window_fits(sundays, 300, start=start, days=366, within=year) == start


def test_hours_only_on_days_that_are_always_holidays_meet_nothing():
    every_sunday = frozenset(date(2026, 1, 4) + timedelta(weeks=n) for n in range(52 * 7))
    calendar = BusinessCalendar(zone=BERLIN, hours={6: (time(9), time(17))}, holidays=every_sunday)
    start = berlin(2026, 1, 1, 0, 0)
    assert window_fits(calendar, 0, start=start, days=366, within=timedelta(days=366)) == start


def test_hours_in_a_dst_gap_move_with_the_clocks_or_close_that_day():
    # 02:00 does not exist on the night clocks go forward (Sun 29 Mar 2026 in Berlin): a time in
    # the gap reads as before the jump (PEP 495), so 02:00-02:59 is open 03:00-03:59 CEST...
    gap = BusinessCalendar(zone=BERLIN, hours={6: (time(2), time(2, 59))})
    assert gap.open_interval(date(2026, 3, 29)) == (
        berlin(2026, 3, 29, 3, 0).astimezone(UTC),
        berlin(2026, 3, 29, 3, 59).astimezone(UTC),
    )
    # ...and 02:30-03:10 ends (03:10 CEST) before it begins (03:30 CEST): closed that Sunday.
    swallowed = BusinessCalendar(zone=BERLIN, hours={6: (time(2, 30), time(3, 10))})
    assert swallowed.open_interval(date(2026, 3, 29)) is None
    start = berlin(2026, 3, 28, 12, 0)
    assert business_add(swallowed, start, 0.5) == berlin(2026, 4, 5, 3, 0)
    year = timedelta(days=366)
    for calendar in (gap, swallowed):
        assert window_fits(calendar, 20, start=start, days=366, within=year) is None


def test_the_walk_is_bounded_whatever_the_window():
    with pytest.raises(NeverOpen):
        business_add(GERMANY, berlin(2026, 1, 5, 9, 0), 80, max_days=7)
    # Longer than every hour of the walk: refused before walking (and before timedelta
    # overflows).
    for hours in (24 * 366 * 6, 1e9, 1e300):
        with pytest.raises(NeverOpen):
            business_add(GERMANY, berlin(2026, 1, 5, 9, 0), hours)
    for hours in (float("nan"), float("inf"), -float("inf"), -1e-9):
        with pytest.raises(ValueError):
            business_add(GERMANY, berlin(2026, 1, 5, 9, 0), hours)
