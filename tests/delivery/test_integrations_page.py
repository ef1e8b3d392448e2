"""Integrations → Recent deliveries names what each delivery carries: the webhook envelope's
event type, or a message for an email."""

import re

import pytest

from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import OutgoingEndpoint
from clientdesk.portal.services import portal_message_read, portal_reply_create
from tests.sending import send_text

pytestmark = pytest.mark.django_db


def test_recent_deliveries_name_their_event(client, administrator, agent, client_obj):
    OutgoingEndpoint.objects.create(
        pk=1, url="https://example.invalid/hook", enabled=True, email_enabled=True
    )
    sent = send_text(agent, client_obj, "Hello")
    portal_message_read(client=client_obj, message_id=sent.message_id)
    portal_reply_create(client=client_obj, body="Thanks", idempotency_key="r", meta=RequestMeta())
    client.force_login(administrator)
    page = client.get("/integrations/").content.decode()
    assert '<th scope="col">Event</th>' in page
    shown = re.findall(
        r'<code class="event-type">([^<]*)</code></td>\s*<td>[^<]*</td>\s*<td>(\w+)', page
    )
    assert sorted(shown) == [
        ("message.read", "Webhook"),
        ("message.received", "Webhook"),
        ("message.sent", "Email"),
        ("message.sent", "Webhook"),
    ]
