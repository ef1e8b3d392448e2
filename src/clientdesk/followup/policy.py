"""The follow-up policy as a business calendar, and its validation."""

import functools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays

from clientdesk.core.errors import ValidationFailed
from clientdesk.followup.clock import WEEKDAYS, BusinessCalendar, business_add, parse_hours
from clientdesk.followup.models import FollowUpPolicy

# Multi-week windows are fine; a window of a year is a typo.
MAX_WINDOW_HOURS = 2000.0


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


def supported_countries() -> list[str]:
    return sorted(holidays.list_supported_countries())


def calendar_for(policy: FollowUpPolicy) -> BusinessCalendar:
    return BusinessCalendar(
        zone=ZoneInfo(policy.timezone),
        hours=parse_hours(policy.business_hours),
        holidays=_Holidays(policy.holidays) if policy.holidays else frozenset(),
    )


def reply_due(policy: FollowUpPolicy, start: datetime) -> datetime:
    """When a client's reply to a message sent at `start` is due."""
    return business_add(calendar_for(policy), start, policy.reply_window_hours)


def response_due(policy: FollowUpPolicy, start: datetime) -> datetime:
    """When our response to a client's message received at `start` is due."""
    return business_add(calendar_for(policy), start, policy.response_window_hours)


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
    if not 0 <= value <= MAX_WINDOW_HOURS:
        raise ValidationFailed(
            f"{name} must be between 0 and {MAX_WINDOW_HOURS:g} business hours.",
            errors={name: [f"Between 0 and {MAX_WINDOW_HOURS:g}."]},
        )
    return float(value)


def policy_check(data: dict[str, Any]) -> PolicyInput:
    """Validate a whole policy (the shape of `GET /api/v1/settings/follow-up`); raises
    ValidationFailed naming the field."""
    zone = data.get("timezone")
    if not isinstance(zone, str) or zone not in available_timezones():
        raise ValidationFailed(
            "timezone must be an IANA zone name such as Europe/Berlin.",
            errors={"timezone": ["Unknown time zone."]},
        )
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationFailed(
            "timezone must be an IANA zone name.", errors={"timezone": ["Unknown time zone."]}
        ) from error
    hours = data.get("business_hours")
    if not isinstance(hours, dict):
        raise ValidationFailed(
            'business_hours must map days to ["HH:MM", "HH:MM"] or null.',
            errors={"business_hours": ['An object such as {"mon": ["09:00", "17:00"]}.']},
        )
    try:
        parse_hours(hours)
    except ValueError as error:
        raise ValidationFailed(
            f"business_hours: {error}.", errors={"business_hours": [str(error)]}
        ) from error
    country = data.get("holidays")
    if country in ("", None):
        country = ""
    elif not isinstance(country, str) or country.upper() not in holidays.list_supported_countries():
        raise ValidationFailed(
            "holidays must be a country code such as DE, or null for none.",
            errors={"holidays": ["Unknown or unsupported country code."]},
        )
    return PolicyInput(
        reply_window_hours=_window(data, "reply_window_hours"),
        response_window_hours=_window(data, "response_window_hours"),
        timezone=zone,
        business_hours={day: hours.get(day) for day in WEEKDAYS},
        holidays=country.upper(),
    )


def due_phrase(policy: FollowUpPolicy, due: datetime) -> str:
    """ "Tue 1 Dec 11:00 Europe/Berlin": a due time as the policy's office reads it."""
    local = due.astimezone(ZoneInfo(policy.timezone))
    return f"{local:%a} {local.day} {local:%b %H:%M} {policy.timezone}"
