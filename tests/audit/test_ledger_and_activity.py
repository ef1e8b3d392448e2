import uuid

import pytest

from clientdesk.core.request_meta import RequestMeta
from tests.sending import send_text

pytestmark = pytest.mark.django_db


def _send(sender, client, body):
    return send_text(sender, client, body)


def test_activity_api_lists_events_newest_first_with_actor(agent, viewer, api_for, client_obj):
    for n in range(3):
        _send(agent, client_obj, f"Message {n}")
    response = api_for(viewer).get(f"/api/v1/clients/{client_obj.id}/activity")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [e["data"]["body"] for e in results] == ["Message 2", "Message 1", "Message 0"]
    assert results[0]["type"] == "message.sent"
    assert results[0]["actor"] == {"type": "staff", "id": str(agent.id), "name": "Alex Agent"}
    assert results[0]["created_at"]


def test_activity_api_needs_view_permission(make_user, api_for, client_obj):
    response = api_for(make_user(None)).get(f"/api/v1/clients/{client_obj.id}/activity")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_activity_log_section_shows_messages_with_sender_and_pages(client, agent, client_obj):
    for n in range(25):
        _send(agent, client_obj, f"Note {n:02d}")
    client.force_login(agent)
    url = f"/clients/{client_obj.id}/activity/"
    first = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert first.index("Note 24") < first.index("Note 05")
    assert "Note 04" not in first
    assert "Alex Agent" in first
    assert "Show older" in first
    older = client.get(url, {"page": "2"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Note 04" in older
    assert "Show older" not in older


def test_activity_log_refuses_users_without_view_permission(client, make_user, client_obj):
    client.force_login(make_user(None))
    response = client.get(f"/clients/{client_obj.id}/activity/")
    assert response.status_code == 403


def test_activity_log_shows_one_card_per_message_with_its_outcomes(client, agent, client_obj):
    """Not three equal cards (sent, delivered via webhook, via email): one per message, with a
    line of outcomes per channel, the read time and the overdue state; replies are cards."""
    import re
    from datetime import timedelta

    from django.utils import timezone

    from clientdesk.audit.models import ActivityType
    from clientdesk.audit.services import activity_record
    from clientdesk.portal.services import portal_message_read, portal_reply_create

    first = _send(agent, client_obj, "Please send your passport").message_id
    second = _send(agent, client_obj, "And a utility bill").message_id
    later = timezone.now() + timedelta(seconds=1)
    for message, kind, channel, error in [
        (first, ActivityType.MESSAGE_DELIVERED, "webhook", ""),
        (first, ActivityType.DELIVERY_FAILED, "email", "550 mailbox unknown"),
        (second, ActivityType.MESSAGE_DELIVERED, "webhook", ""),
    ]:
        from django.db import transaction

        with transaction.atomic():
            activity_record(
                client=client_obj,
                type=kind,
                actor=None,
                created_at=later,
                subject_id=message,
                data={"channel": channel, "attempts": 1, "error": error},
            )
    portal_message_read(client=client_obj, message_id=first)
    portal_reply_create(
        client=client_obj,
        body="Attached <b>passport</b>",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        in_reply_to=first,
    )
    client.force_login(agent)
    html = client.get(f"/clients/{client_obj.id}/activity/", HTTP_HX_REQUEST="true").content
    page = html.decode()
    cards = re.findall(r'<li class="timeline-item[^"]*"[^>]*>(.*?)</li>', page, re.S)
    assert len(cards) == 3  # the reply, the second message, the first message
    reply, second_card, first_card = cards
    assert "Reply from the client" in reply and "Attached &lt;b&gt;passport&lt;/b&gt;" in reply
    assert "And a utility bill" in second_card and "Webhook: Delivered" in second_card
    assert "Email" not in second_card and "Read" not in second_card
    assert "Please send your passport" in first_card
    assert "Webhook: Delivered" in first_card
    assert "Email: Failed — 550 mailbox unknown" in first_card
    assert "Read " in first_card
