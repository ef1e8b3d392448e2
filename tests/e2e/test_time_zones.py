"""Browser: each staff user's times in their own zone, else their browser's (Playwright's
`timezone_id`), on the Messages page and in the send panel, server-rendered and live alike."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import dateformat
from playwright.sync_api import expect

from clientdesk.followup.models import Conversation
from clientdesk.messaging.models import Message
from tests.e2e.conftest import PASSWORD, VIEWPORT
from tests.sending import send_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SENT_AT = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
KOLKATA, NEW_YORK = ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")


def shown(value: datetime, zone: ZoneInfo, fmt: str) -> str:
    return dateformat.format(value.astimezone(zone), fmt)


@pytest.fixture
def in_zone(browser: Any, live_server: Any) -> Iterator[Any]:
    """A page in a browser whose own time zone is `timezone_id` (as the page fixture, which has
    none: static files must load, no script may throw, the CSP must refuse nothing)."""
    contexts, broken = [], []

    def open_page(timezone_id: str) -> Any:
        context = browser.new_context(
            base_url=live_server.url, viewport=VIEWPORT, timezone_id=timezone_id
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: broken.append(f"script error: {error}"))
        page.on(
            "response",
            lambda r: broken.append(r.url) if "/static/" in r.url and r.status >= 400 else None,
        )
        page.on(
            "console",
            lambda m: broken.append(m.text) if "Content Security Policy" in m.text else None,
        )
        return page

    expect.set_options(timeout=15_000)
    yield open_page
    for context in contexts:
        context.close()
    assert not broken, broken


@pytest.fixture
def conversation(make_client, make_staff):
    client = make_client(first_name="Tara", last_name="Timezone")
    result = send_text(make_staff("Agent"), client, "Your documents, please")
    Message.objects.filter(pk=result.message_id).update(created_at=SENT_AT)
    Conversation.objects.filter(pk=client.pk).update(last_message_at=SENT_AT)
    return client


def log_in(page: Any, user: Any) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()


def check_times(page: Any, client: Any, zone: ZoneInfo, colleague: Any) -> None:
    page.goto("/messages/")
    row = page.locator(".conversation").filter(has_text="Tara Timezone")
    expect(row.locator("time")).to_have_text(shown(SENT_AT, zone, "j M, H:i"))
    page.get_by_role("link", name="Tara Timezone").click()
    panel = page.get_by_role("dialog", name="Send a message")
    expect(panel).to_contain_text(shown(SENT_AT, zone, "j M Y, H:i T"))
    # A message arriving while the panel is open (a colleague's) is rendered in the same zone.
    expect(page.locator("body[data-live-stream='open']")).to_have_count(1)
    result = send_text(colleague, client, "A colleague adds this")
    item = panel.locator(".sent-item").filter(has_text="A colleague adds this")
    created = Message.objects.get(pk=result.message_id).created_at
    expect(item.locator("time")).to_have_text(shown(created, zone, "j M Y, H:i T"))
    # Times a script writes (the overdue notice) use the page's zone, not the browser's.
    formatted = page.evaluate("window.clientdeskTime('2026-07-01T10:00:00Z')")
    local = SENT_AT.astimezone(zone)
    assert f"{local.hour % 12 or 12}:{local:%M}" in formatted, formatted


def test_a_user_with_a_zone_sees_it_whatever_the_browser_says(in_zone, make_staff, conversation):
    page = in_zone("America/New_York")
    log_in(page, make_staff("Agent", timezone="Asia/Kolkata"))
    expect(page.locator("#time-zone")).to_contain_text("Asia/Kolkata · IST, UTC+05:30")
    check_times(page, conversation, KOLKATA, make_staff("Agent"))


def test_a_user_without_one_sees_the_browser_s_zone(in_zone, make_staff, conversation):
    page = in_zone("America/New_York")
    log_in(page, make_staff("Agent"))
    expect(page.locator("#time-zone")).to_contain_text(re.compile(r"America/New_York · E[DS]T"))
    check_times(page, conversation, NEW_YORK, make_staff("Agent"))


def test_choosing_a_zone_in_the_profile_changes_the_pages(in_zone, make_staff, conversation):
    page = in_zone("Europe/Berlin")
    log_in(page, make_staff("Viewer"))
    zone_link = page.locator("#time-zone")
    expect(zone_link).to_contain_text("Europe/Berlin")
    zone_link.click()
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    page.get_by_label("Time zone").select_option("America/New_York")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#toasts").get_by_role("status")).to_contain_text("Profile saved")
    page.goto("/messages/")
    expect(page.locator(".conversation time")).to_have_text(shown(SENT_AT, NEW_YORK, "j M, H:i"))


def test_a_first_page_before_the_browser_said_its_zone_is_shown_again_in_it(
    in_zone, make_staff, conversation, live_server, settings
):
    """Signed in without passing the login page (which tells the server the browser's zone):
    the first page comes in the default zone, and is rendered again, once, in the browser's."""
    from django.test import Client

    signed_in = Client()
    signed_in.force_login(make_staff("Viewer"))
    page = in_zone("America/New_York")
    session = signed_in.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    page.goto("/messages/")
    expect(page.locator("body")).to_have_attribute("data-time-zone", "America/New_York")
    expect(page.locator(".conversation time")).to_have_text(shown(SENT_AT, NEW_YORK, "j M, H:i"))
