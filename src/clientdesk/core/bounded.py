"""Bounded parsing of the instants, days, whole numbers and paging cursors that requests and
command lines carry, so that nothing past these bounds reaches `datetime` arithmetic, a database
or JSON.

Python's `datetime` holds years 1 to 9999 and overflows when an instant near either end is moved
to another zone or a day is added; SQLite's adapter moves every instant to UTC, PostgreSQL's
`bigint` ends at 2**63 - 1, and `json.loads` recurses into nested brackets. So an instant is
accepted only when its UTC value lies in the years 2 to 9998 (every zone's view of it, and a
year either way, stays representable), a number only as ASCII digits within the bounds its
field names, and a cursor is the base64 of text split at one separator, never JSON.

Each parser raises `Refused` with what is wrong as a sentence fragment ("must be …"); the
boundary says which field it was: `refused()` for services, pages and commands (a 422 naming
the field), the API's serializer fields in `core/api.py`."""

import argparse
import base64
import binascii
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

from django.utils.dateparse import parse_date, parse_datetime

from clientdesk.core.errors import ValidationFailed

EARLIEST: Final = datetime(2, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# Longer than any ISO 8601 instant (with nanoseconds and an offset with seconds).
_MAX_INSTANT_TEXT = 64
BIGINT_MAX: Final = 2**63 - 1
# ASCII only: int() also reads "١٢" and full-width digits, which no client of ours sends.
_WHOLE = re.compile(r"-?[0-9]{1,40}")
_CURSOR_TEXT = 200
_CURSOR_SEPARATOR = "|"


class Refused(ValueError):
    """A value outside what is accepted; the message says what would be, e.g. "must be …"."""


def refused(name: str, error: Refused, value: object = None) -> ValidationFailed:
    """The 422 naming `name`, for services, pages and commands."""
    shown = f" ({str(value)[:40]!r})" if isinstance(value, str) and value else ""
    return ValidationFailed(f"{name}{shown} {error}", errors={name: [str(error)]})


_INSTANT_RULE = (
    "must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T09:00:00Z, between "
    "0002-01-01 and 9998-12-31 UTC"
)


def in_range(moment: datetime) -> bool:
    """Whether an aware `moment` lies within EARLIEST..LATEST (False when UTC overflows)."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        return False
    return EARLIEST <= utc <= LATEST


def parse_instant(text: str, *, naive: tzinfo | None = UTC) -> datetime:
    """An ISO 8601 date or date-time as an aware instant in UTC. A value without an offset is
    read in `naive` (a bare date is its midnight there); with `naive=None` it is refused."""
    if not isinstance(text, str) or len(text) > _MAX_INSTANT_TEXT or not text.isascii():
        raise Refused(_INSTANT_RULE)
    text = text.strip()
    try:
        parsed = parse_datetime(text)
        if parsed is None and (day := parse_date(text)) is not None:
            parsed = datetime.combine(day, time.min)
    except ValueError:  # well-formed but impossible, e.g. month 13
        parsed = None
    if parsed is None:
        raise Refused(_INSTANT_RULE)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if naive is None:
            raise Refused("must carry a UTC offset, e.g. 2026-11-01T09:00:00Z or +01:00")
        parsed = parsed.replace(tzinfo=naive)
    if not in_range(parsed):
        raise Refused(_INSTANT_RULE)
    return parsed.astimezone(UTC)


def parse_day(text: str) -> date:
    """A calendar day as YYYY-MM-DD (what a date input sends), within the years 2 to 9998."""
    rule = "must be a date as YYYY-MM-DD between 0002-01-01 and 9998-12-31"
    if not isinstance(text, str) or len(text) != 10 or not text.isascii():
        raise Refused(rule)
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise Refused(rule) from error
    if not EARLIEST.date() <= day <= LATEST.date():
        raise Refused(rule)
    return day


def parse_whole(text: str | int, *, minimum: int, maximum: int) -> int:
    """A whole number within `minimum`..`maximum`, from ASCII digits (an optional minus) or a
    JSON integer (never a boolean)."""
    rule = f"must be a whole number from {minimum} to {maximum}"
    if isinstance(text, bool):
        raise Refused(rule)
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and _WHOLE.fullmatch(text):
        value = int(text)
    else:
        raise Refused(rule)
    if not minimum <= value <= maximum:
        raise Refused(rule)
    return value


def whole_number_argument(*, minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse `type` for a command's numeric flag: a bad value is the command's usage error
    ("argument --concurrency: must be a whole number from 1 to 64"), never a traceback."""

    def parse(text: str) -> int:
        try:
            return parse_whole(text, minimum=minimum, maximum=maximum)
        except Refused as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    return parse


def position_encode(at: datetime, key: uuid.UUID) -> str:
    """A cursor for keyset paging: where the last row of a page sat, as (instant, id)."""
    raw = f"{at.astimezone(UTC).isoformat()}{_CURSOR_SEPARATOR}{key}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def position_decode(token: str) -> tuple[datetime, uuid.UUID]:
    """The (instant, id) of a cursor `position_encode` gave out; Refused for anything else
    (garbage, another shape, an instant not in UTC), without recursion or large work."""
    rule = "must be the cursor of a previous page, unchanged; start again without it"
    if not isinstance(token, str) or not 0 < len(token) <= _CURSOR_TEXT or not token.isascii():
        raise Refused(rule)
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        at_text, separator, key_text = raw.decode("ascii").partition(_CURSOR_SEPARATOR)
        at = datetime.fromisoformat(at_text)
        # Written in UTC by position_encode, from a stored row: any year a database holds
        # pages on (the comparison happens in UTC, nothing converts it to another zone).
        if not separator or at.utcoffset() != timedelta(0):
            raise Refused(rule)
        key = uuid.UUID(key_text)
    except (Refused, ValueError, binascii.Error) as error:
        raise Refused(rule) from error
    return at, key
