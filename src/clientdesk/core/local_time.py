"""The time zone of each staff page: the user's own (their profile), else their browser's (the
cookie `static/clientdesk/zone.js` sets), else TIME_ZONE; activated for the request, so every
`|date` in a template shows it. The API, webhooks and exports stay in UTC."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

from clientdesk.core.problems import is_api_path
from clientdesk.core.zones import zone_or_none

BROWSER_ZONE_COOKIE = "clientdesk_tz"


@dataclass(frozen=True)
class LocalTime:
    zone: ZoneInfo
    # "user" (their profile), "browser" (the cookie) or "default" (TIME_ZONE).
    source: str

    @property
    def name(self) -> str:
        return self.zone.key

    def label(self, now: datetime) -> str:
        """ "Europe/Berlin · CET, UTC+01:00": the name, and what it means right now."""
        local = now.astimezone(self.zone)
        offset = local.strftime("%z")
        utc = f"UTC{offset[:3]}:{offset[3:]}" if offset != "+0000" else "UTC"
        abbreviation = local.tzname() or ""
        if abbreviation and abbreviation[0] not in "+-" and abbreviation != "UTC":
            return f"{self.name} · {abbreviation}, {utc}"
        return self.name if self.name == utc else f"{self.name} · {utc}"


def browser_zone(request: HttpRequest) -> ZoneInfo | None:
    """The zone the browser reported, when it names one of the zone database's: the cookie is
    the browser's word, a hint and nothing more."""
    return zone_or_none(unquote(request.COOKIES.get(BROWSER_ZONE_COOKIE, "")[:200]))


def local_time_for(request: HttpRequest) -> LocalTime:
    user = getattr(request, "user", None)
    own = zone_or_none(getattr(user, "timezone", "")) if user is not None else None
    if own is not None:
        return LocalTime(zone=own, source="user")
    browser = browser_zone(request)
    if browser is not None:
        return LocalTime(zone=browser, source="browser")
    return LocalTime(zone=ZoneInfo(settings.TIME_ZONE), source="default")


class LocalTimeRequest(HttpRequest):
    """A staff page's request as `LocalTimeMiddleware` leaves it, for annotations. Never
    instantiated."""

    local_time: LocalTime


class LocalTimeMiddleware:
    """Activates the request's zone for staff pages (after authentication); API paths keep
    UTC, so the instants they write never depend on who asks."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: LocalTimeRequest) -> HttpResponseBase:
        if is_api_path(request.path_info):
            return self.get_response(request)
        local = local_time_for(request)
        request.local_time = local  # read by local_time()
        timezone.activate(local.zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def local_time(request: HttpRequest) -> dict[str, Any]:
    """`local_time` in every template: the zone the page is shown in (for scripts that format
    times the way the server does), and `local_time_label` saying what it is now (the header)."""
    local = getattr(request, "local_time", None)
    if local is None:
        return {}
    return {"local_time": local, "local_time_label": local.label(timezone.now())}
