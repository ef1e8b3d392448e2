"""The follow-up policy as a business calendar: its validation (every window can be met), the
due times it gives, and the countries whose holidays it may close on."""

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import holidays
from holidays import countries as holiday_country_classes
from holidays import registry

from clientdesk.core.errors import ValidationFailed
from clientdesk.core.zones import zone_or_none
from clientdesk.followup.clock import (
    WEEKDAYS,
    BusinessCalendar,
    business_add,
    business_between,
    parse_hours,
    window_fits,
)
from clientdesk.followup.models import FollowUpPolicy

# Multi-week windows are fine; a window of a year is a typo.
MAX_WINDOW_HOURS = 2000.0
# The promise a saved policy keeps: a message sent at any moment of the coming year is due
# within a year of it. A year of starts covers every weekday, every holiday and both DST changes.
HORIZON = timedelta(days=366)
CHECKED_DAYS = 366


class PolicyUnmet(Exception):
    """The stored policy cannot give a due time (it was written around the validation, or a
    later year's holidays close it); the clock is skipped and administrators are told."""


@functools.lru_cache(maxsize=16)
def _country_holidays(code: str) -> holidays.HolidayBase:
    # Expands to more years by itself when asked about a date outside those loaded.
    return holidays.country_holidays(code)


class _Holidays:
    """A country's public holidays as a container of dates (shared, lazily expanded)."""

    def __init__(self, code: str) -> None:
        self._calendar = _country_holidays(code)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and day in self._calendar

    def name(self, day: date) -> str | None:
        return self._calendar.get(day)


def _sort_key(name: str) -> str:
    # "Åland Islands" sorts with the A's.
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


@functools.cache
def holiday_countries() -> list[tuple[str, str]]:
    """(ISO alpha-2 code, English name) of every country with a holiday calendar, one entry
    each, by name. The name is the first line of the country class's documentation
    ("Germany holidays."), or its class name spelt out when documentation is stripped."""
    entries = []
    for class_name, code, *_ in registry.COUNTRIES.values():
        doc = getattr(holiday_country_classes, class_name).__doc__ or ""
        name = re.sub(r"\s+holidays\.?$", "", doc.strip().split("\n", 1)[0])
        name = re.sub(r"\s*\(the\)$", "", name)
        if not name:
            name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", class_name)
        entries.append((code, name))
    return sorted(entries, key=lambda entry: (_sort_key(entry[1]), entry[0]))


@functools.cache
def _country_codes() -> dict[str, str]:
    """Every code the holidays library accepts (alpha-2, alpha-3, aliases such as UK) to the
    country's alpha-2 code."""
    codes = {}
    for _, alpha2, alpha3, *_ in registry.COUNTRIES.values():
        codes[alpha2] = codes[alpha3] = alpha2
    for code in holidays.list_supported_countries():
        codes.setdefault(code, holidays.country_holidays(code).country)
    return codes


def holiday_country_name(code: str) -> str | None:
    return dict(holiday_countries()).get(code)


def calendar_for(policy: FollowUpPolicy) -> BusinessCalendar:
    """The stored policy's calendar; PolicyUnmet when the policy cannot give due times."""
    problem = policy_problem(policy)
    if problem:
        raise PolicyUnmet(problem)
    return _calendar(policy.timezone, parse_hours(policy.business_hours), policy.holidays)


def _calendar(zone: str, hours: Any, country: str) -> BusinessCalendar:
    tz = zone_or_none(zone)
    if tz is None:
        raise ValueError(f"unknown time zone {zone!r}")
    return BusinessCalendar(
        zone=tz, hours=hours, holidays=_Holidays(country) if country else frozenset()
    )


def _due(policy: FollowUpPolicy, start: datetime, hours: float) -> datetime:
    calendar = calendar_for(policy)
    try:
        return business_add(calendar, start, hours)
    except ValueError as error:  # NeverOpen: a year the check did not see closes it
        raise PolicyUnmet(f"no due time from {start:%Y-%m-%d %H:%M} UTC: {error}") from error


def reply_due(policy: FollowUpPolicy, start: datetime) -> datetime:
    """When a client's reply to a message sent at `start` is due; PolicyUnmet when the stored
    policy cannot say."""
    return _due(policy, start, policy.reply_window_hours)


def response_due(policy: FollowUpPolicy, start: datetime) -> datetime:
    """When our response to a client's message received at `start` is due; PolicyUnmet when the
    stored policy cannot say."""
    return _due(policy, start, policy.response_window_hours)


def policy_problem(policy: FollowUpPolicy) -> str | None:
    """Why the stored policy cannot be met, or None when it can. The full check runs once a day
    per distinct policy (the answer depends only on the fields and the year ahead)."""
    fields = policy_fields(policy)
    try:
        key = json.dumps(fields, sort_keys=True, default=repr)
    except ValueError:  # a circular structure cannot come from JSON, but refuse it plainly
        return "the stored policy is not plain data"
    return _problem(key, datetime.now(UTC).date())


@functools.lru_cache(maxsize=32)
def _problem(key: str, today: date) -> str | None:
    try:
        policy_check(json.loads(key), today=today)
    except ValidationFailed as error:
        return error.detail
    return None


def policy_fields(policy: FollowUpPolicy) -> dict[str, Any]:
    """The policy as `GET /api/v1/settings/follow-up` and policy_check read it."""
    return {
        "reply_window_hours": policy.reply_window_hours,
        "response_window_hours": policy.response_window_hours,
        "timezone": policy.timezone,
        "business_hours": policy.business_hours,
        "holidays": policy.holidays or None,
    }


@dataclass(frozen=True)
class PolicyInput:
    reply_window_hours: float
    response_window_hours: float
    timezone: str
    business_hours: dict[str, list[str] | None]
    holidays: str


def _window(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(
            f"{name} must be a number of business hours.", errors={name: ["A number."]}
        )
    # Written so that NaN (which compares false with everything) is refused too.
    if not 0 <= value <= MAX_WINDOW_HOURS:
        raise ValidationFailed(
            f"{name} must be between 0 and {MAX_WINDOW_HOURS:g} business hours.",
            errors={name: [f"Between 0 and {MAX_WINDOW_HOURS:g}."]},
        )
    return float(value)


def policy_check(data: dict[str, Any], *, today: date | None = None) -> PolicyInput:
    """Validate a whole policy (the shape of `GET /api/v1/settings/follow-up`); raises
    ValidationFailed naming the field. Beyond each field's shape, every window must be met:
    from any instant of the year from the start of `today` (UTC), each window ends within
    HORIZON. Saving and using a policy check the same year on the same day, so a policy saved
    is a policy used."""
    zone = data.get("timezone")
    if zone_or_none(zone) is None:
        raise ValidationFailed(
            "timezone must be an IANA zone name such as Europe/Berlin.",
            errors={"timezone": ["Unknown time zone."]},
        )
    assert isinstance(zone, str)
    hours = data.get("business_hours")
    if not isinstance(hours, dict):
        raise ValidationFailed(
            'business_hours must map days to ["HH:MM", "HH:MM"] or null.',
            errors={"business_hours": ['An object such as {"mon": ["09:00", "17:00"]}.']},
        )
    try:
        parsed = parse_hours(hours)
    except ValueError as error:
        raise ValidationFailed(
            f"business_hours: {error}.", errors={"business_hours": [str(error)]}
        ) from error
    country = data.get("holidays")
    if country in ("", None):
        country = ""
    elif not isinstance(country, str) or country.upper() not in _country_codes():
        raise ValidationFailed(
            "holidays must be a country code such as DE, or null for none.",
            errors={"holidays": ["Unknown or unsupported country code."]},
        )
    else:
        country = _country_codes()[country.upper()]
    checked = PolicyInput(
        reply_window_hours=_window(data, "reply_window_hours"),
        response_window_hours=_window(data, "response_window_hours"),
        timezone=zone,
        business_hours={day: hours.get(day) for day in WEEKDAYS},
        holidays=country,
    )
    today = today or datetime.now(UTC).date()
    start = datetime.combine(today, datetime.min.time(), UTC)
    _check_windows_met(checked, _calendar(zone, parsed, country), start)
    return checked


def _check_windows_met(checked: PolicyInput, calendar: BusinessCalendar, now: datetime) -> None:
    """Refuse a policy whose hours are never open, or with a window longer than a year of them,
    naming the field to change."""

    def unmet(hours: float) -> datetime | None:
        return window_fits(calendar, hours, start=now, days=CHECKED_DAYS, within=HORIZON)

    closed = unmet(0)
    if closed is not None:
        where = ""
        if checked.holidays:
            where = f" once the public holidays of {holiday_country_name(checked.holidays)} close"
        problem = (
            f"these business hours are not open once within a year of "
            f"{_local(closed, calendar)}{where}; open on more days"
        )
        closed_errors = {"business_hours": [problem[0].upper() + problem[1:] + "."]}
        if checked.holidays:
            closed_errors["holidays"] = [
                "Its holidays close every open day; choose another or none."
            ]
        raise ValidationFailed(f"business_hours: {problem}.", errors=closed_errors)
    windows = [
        ("reply_window_hours", checked.reply_window_hours),
        ("response_window_hours", checked.response_window_hours),
    ]
    errors: dict[str, list[str]] = {}
    # A longer window ends no earlier, so when the longest fits, so do the others.
    for name, hours in sorted(windows, key=lambda window: -window[1]):
        start = unmet(hours)
        if start is None:
            break
        available = business_between(calendar, start, start + HORIZON) / timedelta(hours=1)
        errors[name] = [
            f"{hours:g} business hours do not fit in a year of these business hours: the year "
            f"from {_local(start, calendar)} holds only {available:g}; shorten the window or "
            f"open more hours."
        ]
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"{first}: {errors[first][0]}", errors=errors)


def _local(instant: datetime, calendar: BusinessCalendar) -> str:
    local = instant.astimezone(calendar.zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def due_phrase(policy: FollowUpPolicy, due: datetime) -> str:
    """ "Tue 1 Dec 11:00 Europe/Berlin": a due time as the policy's office reads it."""
    tz = zone_or_none(policy.timezone)
    local = due.astimezone(tz) if tz else due.astimezone(UTC)
    return f"{local:%a} {local.day} {local:%b %H:%M} {policy.timezone if tz else 'UTC'}"


@dataclass(frozen=True)
class PolicyPreview:
    """What the settings show about the stored policy: when a message sent now is due, or why
    no clock can run."""

    sent_at: datetime
    reply_due_at: datetime | None
    problem: str | None
    text: str


def policy_preview(policy: FollowUpPolicy, *, now: datetime) -> PolicyPreview:
    try:
        due = reply_due(policy, now)
    except PolicyUnmet as problem:
        return PolicyPreview(
            sent_at=now,
            reply_due_at=None,
            problem=str(problem),
            text=(
                f"The stored follow-up policy cannot be met ({problem}); reply and response "
                f"clocks are skipped until it is saved again."
            ),
        )
    return PolicyPreview(
        sent_at=now,
        reply_due_at=due,
        problem=None,
        text=f"A message sent now is due {due_phrase(policy, due)}.",
    )
