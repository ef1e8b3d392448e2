"""Timestamps as the API and webhooks write them: ISO 8601 in UTC with a "Z"."""

from datetime import UTC, datetime
from typing import overload


@overload
def iso_utc(value: datetime) -> str: ...
@overload
def iso_utc(value: None) -> None: ...
def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
