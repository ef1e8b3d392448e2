"""The bounded parsers every boundary uses (core/bounded.py): whatever text arrives, they return
a value within their bounds or raise Refused, and what they return survives what the callers do
with it (every zone, a day either way, a database parameter, JSON)."""

import base64
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given, settings
from hypothesis import strategies as st

from clientdesk.core.bounded import (
    BIGINT_MAX,
    EARLIEST,
    LATEST,
    Refused,
    parse_day,
    parse_instant,
    parse_whole,
    position_decode,
    position_encode,
)

# Extreme and malformed values of every kind the boundary meets (docs/API.md, "Bounds").
HOSTILE = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01",
    "9999-12-31",
    "+275760-09-13",
    "-271821-04-20T00:00:00Z",
    "275760-09-13T00:00:00.000Z",
    "[" * 5000,
    "{" * 5000,
    "\x00",
    "2026-01-01\x00",
    "\ud800",
    "2026-01-01T00:00:00\udfff",
    "9" * 5000,
    "-" + "9" * 30,
    "١٢",
    "２０２６-01-01",
    "1e309",
    "NaN",
    "Infinity",
    "-0",
    "0x10",
    "1_000",
    " 12",
    "2026-02-30",
    "2026-13-01",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "2026-W01-1",
    "",
    "a" * 100_000,
]
ZONES = sorted(available_timezones())


def _survives_everything(moment: datetime) -> None:
    """What callers do with an accepted instant: any zone, a day either way, UTC text."""
    assert moment.tzinfo is not None
    assert EARLIEST <= moment <= LATEST
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "America/Caracas", "Asia/Kolkata"):
        (moment + timedelta(days=1)).astimezone(ZoneInfo(zone))
        (moment - timedelta(days=1)).astimezone(ZoneInfo(zone))
    assert moment.isoformat()


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_refused_or_safe_for_every_parser(text):
    for parse in (
        lambda t: parse_instant(t),
        lambda t: parse_instant(t, naive=None),
        parse_day,
        lambda t: parse_whole(t, minimum=0, maximum=BIGINT_MAX),
        position_decode,
    ):
        try:
            value = parse(text)
        except Refused as error:
            assert str(error).startswith("must")
        else:
            if isinstance(value, datetime):
                _survives_everything(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:00:00Z", datetime(2026, 11, 1, 9, tzinfo=UTC)),
        ("2026-11-01T09:00:00+01:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("0002-01-01T00:00:00Z", EARLIEST),
        ("9998-12-31T23:59:59.999999Z", LATEST),
        ("9999-01-01T05:00:00+14:00", datetime(9998, 12, 31, 15, tzinfo=UTC)),
    ],
)
def test_instants_within_the_bounds_are_read_in_utc(text, expected):
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-05:00",  # the export that streamed every row, then broke
        "0001-01-01T00:00:00+01:00",  # the export's plain-text 500
        "0001-12-31T23:59:59Z",
        "9999-01-01T00:00:00Z",
        "9999-01-01T00:00:00-00:01",
    ],
)
def test_instants_past_the_bounds_are_refused(text):
    with pytest.raises(Refused, match="between 0002-01-01 and 9998-12-31 UTC"):
        parse_instant(text)


def test_a_naive_instant_is_read_in_the_given_zone_or_refused():
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_instant("2026-07-01T12:00", naive=berlin) == datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert parse_instant("2026-07-01T12:00") == datetime(2026, 7, 1, 12, tzinfo=UTC)
    with pytest.raises(Refused, match="UTC offset"):
        parse_instant("2026-07-01T12:00", naive=None)


@given(
    moment=st.datetimes(timezones=st.sampled_from([UTC, *map(ZoneInfo, ZONES[::7])])),
    naive_zone=st.sampled_from([UTC, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")]),
)
@settings(max_examples=400, deadline=None)
def test_any_instant_python_can_write_is_accepted_only_when_every_use_of_it_is_safe(
    moment, naive_zone
):
    for text in (moment.isoformat(), moment.replace(tzinfo=None).isoformat()):
        try:
            parsed = parse_instant(text, naive=naive_zone)
        except Refused:
            continue
        _survives_everything(parsed)


@given(text=st.text(max_size=80))
@settings(max_examples=400, deadline=None)
def test_arbitrary_text_never_escapes_as_anything_but_refused(text):
    for parse in (
        parse_instant,
        parse_day,
        lambda t: parse_whole(t, minimum=-5, maximum=5),
        position_decode,
    ):
        try:
            value = parse(text)
        except Refused:
            continue
        if isinstance(value, datetime):
            _survives_everything(value)


@given(number=st.integers(), minimum=st.integers(-(2**70), 10), span=st.integers(0, 2**70))
@settings(max_examples=300, deadline=None)
def test_whole_numbers_come_back_only_within_their_bounds(number, minimum, span):
    maximum = minimum + span
    for given_as in (number, str(number)):
        try:
            value = parse_whole(given_as, minimum=minimum, maximum=maximum)
        except Refused as error:
            assert f"from {minimum} to {maximum}" in str(error)
            assert not (minimum <= number <= maximum and len(str(number)) <= 40)
        else:
            assert value == number and minimum <= value <= maximum


@pytest.mark.parametrize("value", [True, False, 1.0, "1.0", "١٢", "１２", "+1", "1 ", None, [], {}])
def test_only_ascii_digits_or_a_json_integer_are_whole_numbers(value):
    with pytest.raises(Refused):
        parse_whole(value, minimum=0, maximum=100)


@given(
    at=st.datetimes(timezones=st.just(UTC)),
    key=st.uuids(),
)
@settings(max_examples=300, deadline=None)
def test_a_cursor_round_trips_for_any_instant_a_row_can_hold(at, key):
    assert position_decode(position_encode(at, key)) == (at, key)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# A fixed id: collection must name the same tests in every process that runs them.
UNKNOWN_ID = "8d4a6c2e-0b7f-4f7e-9a51-3c2d1e0f9a77"


@pytest.mark.parametrize(
    "cursor",
    [
        _b64(b"[" * 5000),
        _b64(json.dumps(["2026-01-01T00:00:00+00:00", UNKNOWN_ID]).encode()),
        _b64(f"2026-01-01T00:00:00+01:00|{UNKNOWN_ID}".encode()),
        _b64(f"2026-01-01T00:00:00|{UNKNOWN_ID}".encode()),
        _b64(b"2026-01-01T00:00:00+00:00|not-a-uuid"),
        _b64(b"\xff\xfe|\x00"),
        _b64(f"9999-12-31T23:59:59-05:00|{UNKNOWN_ID}".encode()),
        "!!!!",
        "W1tb" * 100,
        "=" * 10,
        "é",
        "",
    ],
)
def test_cursors_this_server_did_not_write_are_refused(cursor):
    with pytest.raises(Refused, match="cursor of a previous page"):
        position_decode(cursor)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("run_worker", ["--once", "--concurrency", "0"], "must be a whole number from 1 to 64"),
        ("run_worker", ["--once", "--concurrency", "١٢"], "must be a whole number from 1 to 64"),
        ("run_worker", ["--once", "--concurrency", "9" * 5000], "from 1 to 64"),
        ("load_demo", ["--clients", "-1"], "must be a whole number from 0 to"),
        ("load_demo", ["--clients", "1e3"], "must be a whole number from 0 to"),
    ],
)
def test_numeric_flags_of_commands_are_usage_errors(command, args, message):
    with pytest.raises(CommandError, match=message):
        call_command(command, *args)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("portal_link", ["\udcff"]),  # the byte 0xff in argv, as Python reads it
        ("portal_link", ["CRM-\x00"]),
        ("create_api_token", ["\udcffadmin"]),
        ("create_api_token", ["admin", "--name", "a\x00b"]),
        ("export_messages", ["--format", "csv", "--client", "\udcff"]),
        ("export_messages", ["--format", "csv", "--sender", "\x00"]),
    ],
)
def test_text_arguments_of_commands_that_cannot_be_text_are_usage_errors(command, args):
    with pytest.raises(CommandError, match=r"NUL|surrogate"):
        call_command(command, *args)
