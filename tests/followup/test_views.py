"""The Messages page views with data on both sides of each boundary, and the settings page."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import FollowUpPolicy
from clientdesk.followup.services import followup_overdue_run
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from tests.followup.helpers import client_writes

pytestmark = pytest.mark.django_db


def send(agent, client, body="Hello", **kwargs):
    result = message_send(
        sender=agent,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        **kwargs,
    )
    return Message.objects.get(pk=result.message_id)


@pytest.fixture
def clients(agent, make_client):
    quiet = make_client(first_name="Quentin", last_name="Quiet")
    waiting = make_client(first_name="Wanda", last_name="Waiting")
    late = make_client(first_name="Larry", last_name="Late")
    asking = make_client(first_name="Astrid", last_name="Asking")
    soon = timezone.now() + timedelta(seconds=30)
    send(agent, quiet, "Just so you know")
    send(agent, waiting, "Please reply", expects_reply=True)
    send(agent, late, "Please reply soon", expects_reply=True, reply_due_at=soon)
    client_writes(asking, "I have a question <b>bold</b>")
    followup_overdue_run(now=soon + timedelta(seconds=1))
    return {"quiet": quiet, "waiting": waiting, "late": late, "asking": asking}


def names(web, query=""):
    response = web.get(f"/messages/{query}")
    assert response.status_code == 200
    html = response.content.decode()
    return {n for n in ("Quentin", "Wanda", "Larry", "Astrid") if n in html}, html


def test_each_view_lists_exactly_its_conversations(clients, client, viewer):
    client.force_login(viewer)
    assert names(client)[0] == {"Quentin", "Wanda", "Larry", "Astrid"}
    assert names(client, "?view=awaiting")[0] == {"Wanda", "Larry"}
    assert names(client, "?view=needs-response")[0] == {"Astrid"}
    assert names(client, "?view=overdue")[0] == {"Larry"}
    assert names(client, "?view=nonsense")[0] == {"Quentin", "Wanda", "Larry", "Astrid"}
    assert names(client, "?direction=in")[0] == {"Astrid"}
    assert names(client, "?q=wanda")[0] == {"Wanda"}
    _, html = names(client)
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # the client's text is escaped
    assert "overdue" in names(client, "?view=overdue")[1]


def test_a_reply_moves_the_conversation_between_views(clients, client, viewer, agent):
    client.force_login(viewer)
    client_writes(clients["waiting"], "Here it is")
    assert names(client, "?view=awaiting")[0] == {"Larry"}
    assert "Wanda" in names(client, "?view=needs-response")[0]
    send(agent, clients["waiting"], "Thanks!")
    assert "Wanda" not in names(client, "?view=needs-response")[0]


def test_date_and_sender_filters(clients, client, viewer, agent, make_user):
    client.force_login(viewer)
    today = timezone.localdate().isoformat()
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert names(client, f"?since={today}")[0] == {"Quentin", "Wanda", "Larry", "Astrid"}
    assert names(client, f"?since={tomorrow}")[0] == set()
    assert names(client, f"?until={today}")[0] == {"Quentin", "Wanda", "Larry", "Astrid"}
    other = make_user("Agent")
    send(other, clients["quiet"], "From someone else")
    assert names(client, f"?sender={other.pk}")[0] == {"Quentin"}
    assert names(client, "?sender=not-a-uuid")[0] == {"Quentin", "Wanda", "Larry", "Astrid"}
    # A day no date input sends is refused by name, never read as "no filter".
    refused = client.get("/messages/?since=garbage")
    assert refused.status_code == 422
    assert "since" in refused.content.decode()


def test_cursor_pages_and_past_the_end(agent, make_client, client, viewer, monkeypatch):
    monkeypatch.setattr("clientdesk.followup.views.PAGE_SIZE", 2)
    people = [make_client(first_name=f"Person{i}", last_name="X") for i in range(5)]
    for p in people:
        send(agent, p)
    client.force_login(viewer)
    seen: list[str] = []
    url = "/messages/"
    import re

    while url:
        html = client.get(url).content.decode()
        # Each row's link (the row also names the client in its cabinet status).
        seen += re.findall(r'class="conversation-client"[^>]*>(Person\d)', html)
        nxt = re.search(r'rel="next" href="([^"]+)"', html)
        url = "/messages/" + nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert sorted(seen) == sorted(f"Person{i}" for i in range(5))
    bad = client.get("/messages/?cursor=garbage")
    assert bad.status_code == 422


def test_messages_page_needs_view_permission(client, make_user):
    client.force_login(make_user(None))
    assert client.get("/messages/").status_code == 403


def test_settings_page_saves_and_previews(client, make_user):
    client.force_login(make_user("Administrator"))
    page = client.get("/settings/follow-up/")
    assert page.status_code == 200 and "A message sent now is due" in page.content.decode()
    form = {
        "reply_window_hours": "8",
        "response_window_hours": "2",
        "timezone": "Europe/Berlin",
        "holidays": "DE",
        **{f"{d}_open_day": "on" for d in ("mon", "tue", "wed", "thu", "fri")},
        **{f"{d}_opens": "09:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        **{f"{d}_closes": "17:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    }
    saved = client.post("/settings/follow-up/", form, follow=True)
    assert "Europe/Berlin" in saved.content.decode()
    policy = FollowUpPolicy.objects.get()
    assert policy.business_hours["sat"] is None and policy.business_hours["mon"] == [
        "09:00",
        "17:00",
    ]
    bad = client.post("/settings/follow-up/", {**form, "timezone": "Nowhere/Land"})
    assert bad.status_code == 422
    html = bad.content.decode()
    assert "IANA" in html and 'value="Nowhere/Land"' in html  # the typed value is kept
    assert 'aria-current="page">' in html.split("Follow-up</a>")[0].rsplit("<li>", 1)[1]


@pytest.mark.parametrize("role", ["Manager", "Agent", "Viewer", None])
def test_settings_page_is_for_administrators(role, client, make_user):
    client.force_login(make_user(role))
    assert client.get("/settings/follow-up/").status_code == 403
    assert client.post("/settings/follow-up/", {"timezone": "UTC"}).status_code == 403


def test_panel_cards_say_direction_reply_state_read_time_and_fold_long_text(
    agent, client_obj, client
):
    from django.utils import timezone as tz

    send(agent, client_obj, "Please reply", expects_reply=True)
    long_one = send(agent, client_obj, "word " * 300)
    Message.objects.filter(pk=long_one.pk).update(read_at=tz.now())
    client_writes(client_obj, "Here is my answer")
    client.force_login(agent)
    html = client.get(f"/clients/{client_obj.id}/send/", HTTP_HX_REQUEST="true").content.decode()
    assert "From Zoë" in html and "To Zoë" in html
    assert "Answered " in html  # our question, answered by the client's message
    assert "Needs response · due" in html  # the client's message waits for us
    assert 'class="read-at">Read ' in html
    assert "Show more" in html and html.count("word word") > 1


def test_the_page_always_offers_the_stream_and_a_wsgi_server_declines_it(client, viewer):
    from django.test import AsyncRequestFactory, RequestFactory

    from clientdesk.core.live.http import stream_declined

    # In production the page comes from the WSGI `web` process while the proxy sends
    # /api/v1/events to the ASGI `events` process, so the page must offer the stream anyway:
    # the one stream of every staff page (live.js), which the Messages page listens to.
    client.force_login(viewer)
    html = client.get("/messages/").content.decode()
    assert "clientdesk/live.js" in html and "followup/messages.js" in html
    assert "data-live-stream=" not in html  # no second stream of its own
    # Served by WSGI itself (a misrouted proxy, a test server) a stream answers 204, which
    # tells EventSource not to reconnect, instead of holding a thread forever.
    declined = stream_declined(RequestFactory().get("/api/v1/events"))
    assert declined is not None and declined.status_code == 204
    assert stream_declined(AsyncRequestFactory().get("/api/v1/events")) is None


def test_the_export_button_exports_what_the_filters_select(clients, client, agent, make_user):
    manager = make_user("Manager")
    client.force_login(manager)
    day = timezone.localdate().isoformat()
    page = client.get(
        f"/messages/?since={day}&until={day}&sender={agent.pk}&direction=out"
    ).content.decode()
    import html
    import re

    href = html.unescape(re.search(r'id="export-messages" href="([^"]+)"', page).group(1))
    assert href.startswith("/api/v1/messages/export?format=csv")
    assert f"since={day}T00%3A00%3A00Z" in href and f"sender={agent.username}" in href
    assert "direction=out" in href
    exported = client.get(href)
    assert exported.status_code == 200
    body = b"".join(exported.streaming_content).decode()
    assert "Please reply soon" in body and "I have a question" not in body
    client.force_login(agent)  # Agents may not export: no button
    assert 'id="export-messages"' not in client.get("/messages/").content.decode()
