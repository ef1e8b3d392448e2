"""The Broadcasts pages: who sees them, the composer and its review (a dry run), the send with its
compose key, the broadcast's page (progress, counts, recipients) and the cancel."""

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from clientdesk.clients.services import client_update
from clientdesk.messaging.models import Message
from clientdesk.outreach.models import Broadcast, BroadcastRecipient

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
COMPOSE = {
    "search": "",
    "language": "",
    "attributes": "",
    "body": "Hello {{firstName}}, the office moves on Monday.",
    "category": "service",
    "when": "now",
}


@pytest.fixture
def crowd(make_client):
    """Four Lisbon clients (three on the gold plan) and one in Porto."""
    made = [
        make_client(first_name=name, last_name="Lisbon", attributes={"plan": plan})
        for name, plan in (
            ("Ana", "gold"),
            ("Bruno", "gold"),
            ("Clara", "basic"),
            ("Duarte", "gold"),
        )
    ]
    make_client(first_name="Eva", last_name="Porto")
    return made


def _send(client: Any, key: str | None = None, **fields: Any) -> Any:
    data = {**COMPOSE, **fields, "idempotency_key": key or str(uuid.uuid4())}
    return client.post("/broadcasts/send/", data, **HTMX)


def _broadcast(client: Any, **fields: Any) -> Broadcast:
    response = _send(client, **fields)
    assert response.status_code == 204, response.content
    return Broadcast.objects.get(pk=response["HX-Redirect"].strip("/").split("/")[-1])


def _later() -> str:
    """A `datetime-local` value a day ahead in the page's zone (UTC for these users)."""
    return (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


# ---- who sees what ----


def test_the_sidebar_names_broadcasts_only_for_users_who_may_send_one(client, manager, agent):
    client.force_login(manager)
    html = client.get("/clients/").content.decode()
    assert re.search(
        r'<a href="/broadcasts/"[^>]*>\s*<svg[^>]*>.*?</svg>\s*Broadcasts</a>', html, re.S
    )
    client.force_login(agent)
    html = client.get("/clients/").content.decode()
    assert "/broadcasts/" not in html
    assert "Broadcasts" not in html


@pytest.mark.parametrize(
    "path", ["/broadcasts/", "/broadcasts/new/", "/broadcasts/matching/?search=a"]
)
def test_users_without_send_a_broadcast_get_403_on_the_pages(client, agent, viewer, path):
    for user in (agent, viewer):
        client.force_login(user)
        response = client.get(path)
        assert response.status_code == 403
        assert "Send a broadcast" in response.content.decode()


def test_the_anonymous_are_sent_to_the_login(client):
    response = client.get("/broadcasts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_agent_gets_403_on_a_broadcast_and_its_actions(client, manager, agent, crowd):
    client.force_login(manager)
    broadcast = _broadcast(client, search="Lisbon", when="at", send_at=_later())
    client.force_login(agent)
    for path in ("", "progress/", "recipients/"):
        assert client.get(f"/broadcasts/{broadcast.id}/{path}").status_code == 403
    assert client.post(f"/broadcasts/{broadcast.id}/cancel/").status_code == 403
    assert _send(client).status_code == 403
    assert client.post("/broadcasts/review/", COMPOSE).status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == "scheduled"
    assert Broadcast.objects.count() == 1


def test_another_managers_broadcast_is_listed_and_opens_for_a_manager(
    client, manager, make_user, crowd
):
    """The API's rule: with *Send a broadcast*, every broadcast, not only one's own."""
    other = make_user("Manager", first_name="Otto", last_name="Other")
    client.force_login(other)
    first = _broadcast(client, when="at", send_at=_later(), search="Lisbon")
    second = _broadcast(client, when="at", send_at=_later(), search="Porto")
    client.force_login(manager)
    html = client.get("/broadcasts/").content.decode()
    assert html.index(f"/broadcasts/{second.id}/") < html.index(f"/broadcasts/{first.id}/")
    assert "Otto Other" in html
    assert "New broadcast" in html
    page = client.get(f"/broadcasts/{first.id}/")
    assert page.status_code == 200
    assert "Scheduled" in page.content.decode()


def test_an_unknown_or_malformed_broadcast_id_is_404(client, manager):
    client.force_login(manager)
    assert client.get(f"/broadcasts/{uuid.uuid4()}/").status_code == 404
    assert client.get(f"/broadcasts/{uuid.uuid4()}/progress/", **HTMX).status_code == 404
    assert client.post(f"/broadcasts/{uuid.uuid4()}/cancel/", **HTMX).status_code == 404
    assert client.get("/broadcasts/not-a-uuid/").status_code == 404


# ---- the composer and its review ----


def test_the_composer_is_prefilled_from_the_clients_search_with_a_fresh_key(client, manager):
    client.force_login(manager)
    html = client.get("/broadcasts/new/?search=%3Cb%3ELisbon").content.decode()
    assert 'value="&lt;b&gt;Lisbon"' in html
    assert "<b>Lisbon" not in html
    keys = {
        re.search(
            r'name="idempotency_key" value="([^"]+)"',
            client.get("/broadcasts/new/").content.decode(),
        ).group(1)
        for _ in range(2)
    }
    assert len(keys) == 2
    for label in (
        "Audience",
        "Message",
        "Category",
        "When",
        "Service",
        "Outreach",
        "Now",
        "At a time",
        "At a local time in each client's zone",
    ):
        assert label in html


def test_the_review_counts_skips_and_previews_and_writes_nothing(client, manager, crowd):
    client_update(actor=manager, client_id=crowd[3].id, changes={"is_active": False})
    client.force_login(manager)
    response = client.post("/broadcasts/review/", {**COMPOSE, "search": "Lisbon"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="review-recipients">3</strong> clients will get' in html
    assert "Send to 3 clients" in html
    assert "inactive" in html and "The client is deactivated" in html
    assert "Hello Ana, the office moves on Monday." in html
    assert "Ana Lisbon" in html
    assert Broadcast.objects.count() == 0
    assert Message.objects.count() == 0


def test_the_review_of_attribute_and_language_filters(client, manager, crowd):
    client.force_login(manager)
    html = client.post(
        "/broadcasts/review/",
        {**COMPOSE, "search": "Lisbon", "attributes": "plan = gold\r\n", "language": "en"},
        **HTMX,
    ).content.decode()
    assert "Send to 3 clients" in html
    assert "Clara" not in html


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"search": ""}, "audience"),
        ({"search": "Lisbon", "attributes": "plan"}, "line 1"),
        ({"search": "Lisbon", "attributes": "plan = gold\n" * 21}, "at most 20"),
        ({"search": "Lisbon", "attributes": "a b = c"}, "attribute name"),
        ({"search": "Lisbon", "category": "spam"}, "category"),
        ({"search": "Lisbon", "when": "at", "send_at": "yesterday"}, "date"),
        ({"search": "Lisbon", "when": "at", "send_at": "2001-01-01T09:00"}, "past"),
        ({"search": "Lisbon", "when": "local", "send_at_local": ""}, "local"),
        ({"search": "Lisbon", "body": "Hi {% if %}"}, ""),
        ({"search": "Lisbon", "body": "a\x00b"}, ""),
        ({"search": "Lisbon", "body": "x" * 5001}, "5,000"),
        ({"search": "Lisbon", "template_id": str(uuid.uuid4()), "body": ""}, "template"),
        ({"search": "Lisbon", "template_id": str(uuid.uuid4()), "body": "typed"}, "not both"),
    ],
)
def test_a_bad_review_is_an_alert_toast_that_keeps_the_form(client, manager, crowd, fields, words):
    client.force_login(manager)
    response = client.post("/broadcasts/review/", {**COMPOSE, **fields}, **HTMX)
    html = response.content.decode()
    assert 400 <= response.status_code < 500, html
    assert response["HX-Reswap"] == "none"
    assert 'role="alert"' in html
    assert words.lower() in html.lower()
    assert Broadcast.objects.count() == 0


def test_a_review_that_reaches_nobody_says_so_without_a_send_button(client, manager, crowd):
    client.force_login(manager)
    html = client.post(
        "/broadcasts/review/", {**COMPOSE, "search": "Lisbon", "body": "Hi {{plan_code}}"}, **HTMX
    ).content.decode()
    assert '<strong id="review-recipients">0</strong> clients will get' in html
    assert "missing_variables" in html
    assert "Send to" not in html
    assert (
        client.post("/broadcasts/review/", {**COMPOSE, "search": "nobody"}, **HTMX).status_code
        == 200
    )


def test_a_bad_review_without_htmx_shows_the_form_again_with_the_error(client, manager, crowd):
    client.force_login(manager)
    response = client.post(
        "/broadcasts/review/", {**COMPOSE, "search": "", "body": "Kept <i>text</i>"}
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert 'id="broadcast-error"' in html
    assert "Kept &lt;i&gt;text&lt;/i&gt;</textarea>" in html


def test_a_template_is_offered_and_reviewed_for_each_client(client, manager, crowd):
    from clientdesk.messaging.services.templates import template_create

    version = template_create(
        author=manager, name="Office move", body="Dear {{firstName}}, we move.", language="en"
    )
    client.force_login(manager)
    assert "Office move" in client.get("/broadcasts/new/").content.decode()
    fields = {**COMPOSE, "search": "Lisbon", "body": "", "template_id": str(version.template_id)}
    html = client.post("/broadcasts/review/", fields, **HTMX).content.decode()
    assert "Dear Ana, we move." in html
    assert "Send to 4 clients" in html
    broadcast = _broadcast(client, **{k: v for k, v in fields.items() if k != "idempotency_key"})
    assert (broadcast.template_id, broadcast.body) == (version.template_id, "")


def test_markup_in_the_text_is_shown_as_text_in_the_review(client, manager, crowd):
    client.force_login(manager)
    body = "<script>alert(1)</script> {{firstName}} <b>bold</b>"
    html = client.post(
        "/broadcasts/review/", {**COMPOSE, "search": "Lisbon", "body": body}, **HTMX
    ).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Ana &lt;b&gt;bold&lt;/b&gt;" in html


def test_a_user_with_only_send_a_broadcast_gets_the_composer_without_templates(
    client, make_user, crowd
):
    from django.contrib.auth.models import Permission

    user = make_user(None)
    user.user_permissions.add(Permission.objects.get(codename="send_broadcast"))
    client.force_login(user)
    html = client.get("/broadcasts/new/").content.decode()
    assert 'name="template_id"' not in html
    response = client.post("/broadcasts/review/", {**COMPOSE, "search": "Lisbon"}, **HTMX)
    assert "Send to 4 clients" in response.content.decode()


# ---- the send ----


def test_a_double_press_of_send_makes_one_broadcast(client, manager, crowd):
    client.force_login(manager)
    first = _send(client, key="compose-1", search="Lisbon")
    second = _send(client, key="compose-1", search="Lisbon")
    assert first.status_code == second.status_code == 204
    assert first["HX-Redirect"] == second["HX-Redirect"]
    broadcast = Broadcast.objects.get()
    assert first["HX-Redirect"] == f"/broadcasts/{broadcast.id}/"
    assert broadcast.recipients == 4
    assert broadcast.created_by == manager


def test_without_javascript_the_send_and_the_cancel_post_and_redirect(client, manager, crowd):
    client.force_login(manager)
    data = {**COMPOSE, "search": "Lisbon", "when": "at", "send_at": _later()}
    response = client.post("/broadcasts/send/", {**data, "idempotency_key": "plain-form"})
    broadcast = Broadcast.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/broadcasts/{broadcast.id}/"
    page = client.get(response["Location"]).content.decode()
    assert "Broadcast to 4 clients created." in page
    cancelled = client.post(f"/broadcasts/{broadcast.id}/cancel/")
    assert cancelled.status_code == 302
    assert "4 clients will not get it" in client.get(cancelled["Location"]).content.decode()


def test_a_time_is_read_in_the_users_zone(client, make_user, crowd):
    user = make_user("Manager", timezone="Europe/Lisbon")
    client.force_login(user)
    day = (timezone.now() + timedelta(days=30)).date()
    broadcast = _broadcast(client, search="Lisbon", when="at", send_at=f"{day}T09:30")
    expected = datetime(day.year, day.month, day.day, 9, 30, tzinfo=ZoneInfo("Europe/Lisbon"))
    assert broadcast.send_at == expected
    assert broadcast.status == "scheduled"


def test_a_local_time_is_kept_for_each_clients_zone(client, manager, crowd):
    client.force_login(manager)
    day = (timezone.now() + timedelta(days=30)).date()
    broadcast = _broadcast(client, search="Lisbon", when="local", send_at_local=f"{day}T09:00")
    assert broadcast.send_at_local.startswith(f"{day}T09:00")
    page = client.get(f"/broadcasts/{broadcast.id}/").content.decode()
    assert f"{day} 09:00 in each client" in page


def test_a_failed_send_is_an_alert_and_no_broadcast(client, manager, crowd):
    client.force_login(manager)
    response = _send(client, search="nobody matches this")
    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    assert Broadcast.objects.count() == 0


# ---- the broadcast's page ----


def test_the_page_shows_status_counts_and_a_progressbar(client, manager, crowd):
    client.force_login(manager)
    broadcast = _broadcast(client, search="Lisbon", when="at", send_at=_later())
    html = client.get(f"/broadcasts/{broadcast.id}/").content.decode()
    bar = re.search(r'<div class="progress" role="progressbar"[^>]*>', html).group(0)
    assert 'aria-valuemax="4"' in bar and 'aria-valuenow="0"' in bar
    assert f'data-live-broadcast="{broadcast.id}"' in html
    for name in ("Recipients", "Sent", "Skipped", "Cancelled", "Pending"):
        assert f"<dt>{name}</dt>" in html
    assert '<dd id="count-pending">4</dd>' in html
    assert "Cancel broadcast" in html
    partial = client.get(f"/broadcasts/{broadcast.id}/progress/", **HTMX).content.decode()
    assert partial.lstrip().startswith('<section id="broadcast-progress"')
    assert "<html" not in partial


def test_the_recipients_table_filters_by_status_and_reason_and_pages(
    client, manager, make_client, settings
):
    made = [make_client(first_name=f"P{n:02d}", last_name="Paged") for n in range(55)]
    client_update(actor=manager, client_id=made[0].id, changes={"is_active": False})
    client.force_login(manager)
    broadcast = _broadcast(client, search="Paged", when="at", send_at=_later())
    url = f"/broadcasts/{broadcast.id}/recipients/"
    first = client.get(url, **HTMX).content.decode()
    assert first.count('class="client-link"') == 50
    assert 'rel="next"' in first
    second = client.get(url + "?page=2", **HTMX).content.decode()
    assert (
        second.count('class="client-link"')
        == BroadcastRecipient.objects.filter(broadcast=broadcast).count() - 50
    )
    skipped = client.get(url + "?status=skipped&reason=inactive", **HTMX).content.decode()
    assert skipped.count('class="client-link"') == 1
    assert "P00 Paged" in skipped
    assert "The client is deactivated" in skipped
    assert "No recipients" in client.get(url + "?status=sent", **HTMX).content.decode()
    # Unknown filters are ignored, not an error; a hostile page number is a clear 4xx.
    assert client.get(url + "?status=%3Cscript%3E&reason=x", **HTMX).status_code == 200
    assert 400 <= client.get(url + "?page=-1", **HTMX).status_code < 500


def test_cancel_stops_a_scheduled_broadcast_and_a_second_cancel_is_409(client, manager, crowd):
    client.force_login(manager)
    broadcast = _broadcast(client, search="Lisbon", when="at", send_at=_later())
    response = client.post(f"/broadcasts/{broadcast.id}/cancel/", **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/broadcasts/{broadcast.id}/"
    broadcast.refresh_from_db()
    assert broadcast.status == "cancelled"
    assert broadcast.cancelled_by == manager
    html = client.get(f"/broadcasts/{broadcast.id}/").content.decode()
    assert "Cancel broadcast" not in html
    assert "Cancelled" in html
    again = client.post(f"/broadcasts/{broadcast.id}/cancel/", **HTMX)
    assert again.status_code == 409
    assert 'role="alert"' in again.content.decode()
    assert Message.objects.count() == 0


# ---- the Clients page's "Send to all N matching" ----


def test_send_to_all_matching_counts_the_search_for_managers_only(client, manager, agent, crowd):
    client.force_login(manager)
    page = client.get("/clients/?q=Lisbon").content.decode()
    assert 'hx-get="/broadcasts/matching/?search=Lisbon"' in page
    assert "/broadcasts/matching/" not in client.get("/clients/").content.decode()
    button = client.get("/broadcasts/matching/?search=Lisbon", **HTMX).content.decode()
    assert "Send to all 4 matching" in button
    assert 'href="/broadcasts/new/?search=Lisbon"' in button
    assert client.get("/broadcasts/matching/?search=nobody", **HTMX).content.decode().strip() == ""
    for nothing in ("!!!", "%3Cscript%3E", "x" * 5000):
        response = client.get(f"/broadcasts/matching/?search={nothing}", **HTMX)
        assert response.status_code == 200
        assert "Send to all" not in response.content.decode()
    # A NUL is refused at the boundary, as everywhere.
    assert client.get("/broadcasts/matching/?search=a%00", **HTMX).status_code == 422
    client.force_login(agent)
    assert "/broadcasts/matching/" not in client.get("/clients/?q=Lisbon").content.decode()
