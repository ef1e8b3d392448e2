"""The IANA time zones a person may choose: the check of a name, and the names grouped for a
picker."""

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError

# Files in the zone database that are not places: the host's own setting, the POSIX rules
# template, and the placeholder for "not set yet".
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def zone_names() -> frozenset[str]:
    """Every zone name a person may pick (read once: listing walks the zone files)."""
    return frozenset(available_timezones() - _NOT_PLACES)


def zone_or_none(name: object) -> ZoneInfo | None:
    """The zone called `name`, or None for anything that is not one of zone_names()."""
    if not isinstance(name, str) or name not in zone_names():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_name_validate(value: str) -> None:
    """A model field's validator: empty, or one of zone_names()."""
    if value and zone_or_none(value) is None:
        raise ValidationError(
            "%(value)s is not a time zone; use an IANA name such as Europe/Berlin.",
            params={"value": value},
            code="invalid_zone",
        )


@functools.cache
def zone_groups() -> list[tuple[str, list[str]]]:
    """The names grouped by region for `<optgroup>`s ("Europe": [...]); names without a region
    ("UTC", "EST5EDT") under "Other"."""
    groups: dict[str, list[str]] = {}
    for name in sorted(zone_names()):
        region = name.split("/", 1)[0] if "/" in name else "Other"
        groups.setdefault(region, []).append(name)
    return sorted(groups.items(), key=lambda item: (item[0] == "Other", item[0]))
