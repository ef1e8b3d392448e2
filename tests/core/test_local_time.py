"""Times on staff pages in each user's zone: their own (profile), else their browser's (cookie,
checked against the zone database), else TIME_ZONE; the API stays UTC; the profile page sets
the zone and the change is in the ledger."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.utils import dateformat, timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, AuditEntry, AuditRecord
from clientdesk.audit.services import audit_sequence
from clientdesk.core.local_time import BROWSER_ZONE_COOKIE
from clientdesk.delivery.models import Delivery
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.templates import template_create
from tests.sending import send_text

pytestmark = pytest.mark.django_db

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30 all year: every time differs from UTC's
NEW_YORK = ZoneInfo("America/New_York")


def shown(value: datetime, zone: ZoneInfo, fmt: str) -> str:
    """`value` as a template's `|date:fmt` writes it in `zone`."""
    return dateformat.format(value.astimezone(zone), fmt)


@pytest.fixture
def world(make_user, client_obj, settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    admin = make_user("Administrator")
    endpoint_configure(user=admin, url="http://127.0.0.1:9/hook", enabled=True)
    result = send_text(admin, client_obj, "Hello there")
    version = template_create(author=admin, name="Welcome", body="Hi", language="en")
    audit_sequence()
    message = Message.objects.get(pk=result.message_id)
    return {
        "admin": admin,
        "client": client_obj,
        "message": message,
        "version": version,
        "event": ActivityEvent.objects.filter(client=client_obj).latest("created_at"),
        "record": AuditRecord.objects.order_by("-sequence").first(),
        "delivery": Delivery.objects.filter(subject_id=message.pk).first(),
    }


def pages(world):
    """(url, instant, format) of a time each staff page shows."""
    client_id, message = world["client"].pk, world["message"]
    return [
        ("/messages/", message.created_at, "j M, H:i"),
        (f"/clients/{client_id}/send/", message.created_at, "j M Y, H:i T"),
        (f"/clients/{client_id}/activity/", world["event"].created_at, "j M Y, H:i T"),
        ("/audit/", world["record"].created_at, "j M Y, H:i:s"),
        ("/templates/", world["version"].created_at, "j M Y, H:i"),
        (
            f"/templates/{world['version'].template_id}/",
            world["version"].created_at,
            "j M Y, H:i T",
        ),
        ("/integrations/", world["delivery"].created_at, "j M, H:i:s"),
    ]


def check_pages(browser, world, zone):
    for url, instant, fmt in pages(world):
        response = browser.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert shown(instant, zone, fmt) in html, (url, shown(instant, zone, fmt))
        other = UTC if zone is not UTC else KOLKATA
        assert shown(instant, other, fmt) not in html, url


def test_a_user_with_a_zone_sees_every_page_in_it(world, client):
    admin: User = world["admin"]
    admin.timezone = "Asia/Kolkata"
    admin.save()
    client.force_login(admin)
    client.cookies[BROWSER_ZONE_COOKIE] = "America%2FNew_York"  # their own zone wins
    check_pages(client, world, KOLKATA)
    header = client.get("/clients/").content.decode()
    assert 'data-time-zone="Asia/Kolkata"' in header and 'data-time-zone-source="user"' in header
    assert "Asia/Kolkata · IST, UTC+05:30" in header


def test_without_a_zone_the_browser_s_is_used(world, client):
    client.force_login(world["admin"])
    client.cookies[BROWSER_ZONE_COOKIE] = "America%2FNew_York"
    check_pages(client, world, NEW_YORK)
    assert 'data-time-zone-source="browser"' in client.get("/clients/").content.decode()


@pytest.mark.parametrize(
    "cookie",
    [
        "Mars%2FOlympus",
        "..%2F..%2Fetc%2Fpasswd",
        "localtime",
        "Europe%2FBerlin%00",
        "%ED%A0%80",  # a lone surrogate, percent-encoded
        "europe%2Fberlin",
        "Europe/Berlin" * 500,
        "",
    ],
)
def test_a_browser_zone_that_is_not_one_is_ignored(cookie, world, client):
    client.force_login(world["admin"])
    client.cookies[BROWSER_ZONE_COOKIE] = cookie
    page = client.get("/messages/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-time-zone="UTC"' in html and 'data-time-zone-source="default"' in html
    assert shown(world["message"].created_at, UTC, "j M, H:i") in html


def test_the_api_answers_in_utc_whoever_asks(world, client):
    admin = world["admin"]
    admin.timezone = "Asia/Kolkata"
    admin.save()
    client.force_login(admin)
    client.cookies[BROWSER_ZONE_COOKIE] = "America%2FNew_York"
    message = world["message"]
    for url in (
        f"/api/v1/messages/{message.pk}",
        f"/api/v1/clients/{world['client'].pk}",
        f"/api/v1/clients/{world['client'].pk}/activity",
        "/api/v1/messages",
        "/api/v1/audit/records",
    ):
        body = client.get(url).content.decode()
        stamps = re.findall(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^"]*)"', body)
        assert stamps, url
        assert all(s.endswith(("Z", "+00:00")) for s in stamps), (url, stamps)
    assert timezone.get_current_timezone_name() == "UTC"  # nothing left active after a page


def test_the_profile_sets_and_clears_the_zone_and_the_ledger_says_so(make_user, client):
    agent = make_user("Agent")
    client.force_login(agent)
    page = client.get("/accounts/profile/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<option value="Europe/Berlin">' in html and '<optgroup label="Europe">' in html
    assert "Use my browser" in html

    response = client.post("/accounts/profile/", {"timezone": "Asia/Kolkata"})
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.timezone == "Asia/Kolkata"
    entry = AuditEntry.objects.filter(action="user.changed").latest("created_at")
    assert entry.actor_id == str(agent.pk)
    assert entry.data["before"] == {"timezone": ""} and entry.data["after"] == {
        "timezone": "Asia/Kolkata"
    }
    assert (
        '<option value="Asia/Kolkata" selected>'
        in client.get("/accounts/profile/").content.decode()
    )

    assert client.post("/accounts/profile/", {"timezone": ""}).status_code == 302
    agent.refresh_from_db()
    assert agent.timezone == ""


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus",
        "localtime",
        "Factory",
        "UTC\x00",
        "<b>UTC</b>",
        "a" * 10_000,
        "Europe/Berlin ",
    ],
)
def test_the_profile_refuses_what_is_not_a_zone_and_keeps_the_old_one(zone, make_user, client):
    agent = make_user("Agent", timezone="Asia/Kolkata")
    client.force_login(agent)
    before = AuditEntry.objects.count()
    response = client.post("/accounts/profile/", {"timezone": zone})
    assert response.status_code in (400, 422)
    agent.refresh_from_db()
    assert agent.timezone == "Asia/Kolkata"
    assert AuditEntry.objects.count() == before


def test_the_profile_is_linked_from_every_staff_page(make_user, client):
    client.force_login(make_user("Viewer"))
    html = client.get("/clients/").content.decode()
    assert 'href="/accounts/profile/"' in html and 'id="time-zone"' in html


def test_the_messages_page_s_days_are_the_reader_s_and_so_is_the_export(world, client):
    """A day picked on the Messages page is a day in the reader's zone; the Export link carries
    the instants it begins and ends, so the export holds what the list shows."""
    import html as markup

    admin = world["admin"]
    admin.timezone = "Asia/Kolkata"
    admin.save()
    client.force_login(admin)
    sent = world["message"].created_at.astimezone(KOLKATA).date()
    day = sent.isoformat()
    page = client.get(f"/messages/?since={day}&until={day}").content.decode()
    assert "Hello there" in page
    href = markup.unescape(re.search(r'id="export-messages" href="([^"]+)"', page).group(1))
    start = datetime.combine(sent, datetime.min.time(), KOLKATA).astimezone(UTC)
    query = parse_qs(urlsplit(href).query)
    assert query["since"] == [f"{start:%Y-%m-%dT%H:%M:%S}Z"]
    assert query["until"] == [f"{start + timedelta(days=1):%Y-%m-%dT%H:%M:%S}Z"]
    exported = b"".join(client.get(href).streaming_content).decode()
    assert "Hello there" in exported
