"""With a portal, email can be a notification that carries a link instead of the text."""

import uuid

import pytest

from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Message
from clientdesk.messaging.outbound import email_payload
from clientdesk.messaging.services.sending import message_send

pytestmark = pytest.mark.django_db


def sent(agent, client) -> Message:
    result = message_send(
        sender=agent,
        client_id=client.id,
        body="Your loan offer: 4.1 % <b>fixed</b>",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    return Message.objects.get(pk=result.message_id)


def test_by_default_the_email_carries_the_text(agent, client_obj, settings) -> None:
    settings.PORTAL_URL = "https://bank.example/cabinet"
    payload = email_payload(sent(agent, client_obj))
    assert "Your loan offer" in payload["text"]


def test_notification_only_sends_a_link_and_never_the_text(agent, client_obj, settings) -> None:
    settings.PORTAL_URL = "https://bank.example/cabinet?a=1&b=<2>"
    settings.EMAIL_NOTIFY_ONLY = True
    settings.BUSINESS_NAME = "Bank & <Co>"
    payload = email_payload(sent(agent, client_obj))
    assert payload["subject"] == "New message from Bank & <Co>"
    assert payload["text"].startswith("You have a new message from Bank & <Co> in your online")
    assert "https://bank.example/cabinet?a=1&b=<2>" in payload["text"]
    assert "loan offer" not in payload["text"] + payload["html"]
    assert "Bank &amp; &lt;Co&gt;" in payload["html"]
    assert 'href="https://bank.example/cabinet?a=1&amp;b=&lt;2&gt;"' in payload["html"]


def test_notification_only_needs_a_portal_url(agent, client_obj, settings) -> None:
    settings.EMAIL_NOTIFY_ONLY = True
    settings.PORTAL_URL = ""
    assert "Your loan offer" in email_payload(sent(agent, client_obj))["text"]
