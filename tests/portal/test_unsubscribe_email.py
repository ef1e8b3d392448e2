"""Outreach e-mail carries the one-click unsubscribe link (RFC 8058) in its headers and footer;
service e-mail never does. Through a real SMTP server on loopback and the real app, where the
link from the received e-mail is POSTed as a mail system does."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clientdesk.audit.models import ActivityEvent, ActivityType, ActorType
from clientdesk.clients.consent import unsubscribe_token
from clientdesk.clients.models import Client
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Channel, Delivery, OutgoingEndpoint
from clientdesk.delivery.worker import Worker
from clientdesk.messaging.models import Category, Direction
from clientdesk.messaging.services.writing import MessageWrite, messages_write
from tests.mail import Inbox, smtp_inbox
from tests.portal.unsubscribing import ONE_CLICK, app_client, consent_changes, one_click

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def inbox(settings: Any) -> Iterator[Inbox]:
    OutgoingEndpoint.objects.create(
        pk=1, url="https://example.invalid/x", enabled=False, email_enabled=True
    )
    with smtp_inbox(settings) as inbox:
        yield inbox


@pytest.fixture
def app(asgi_server: int, settings: Any) -> Iterator[httpx.Client]:
    """The real app on loopback, its address Clientdesk's public one; each request goes bare,
    as a mail system's does."""
    yield from app_client(asgi_server, settings)


def write(agent: Any, client: Client, body: str, category: Category) -> None:
    messages_write(
        writes=[
            MessageWrite(
                client=client,
                direction=Direction.OUT,
                sender=agent,
                body=body,
                meta=RequestMeta(),
                category=category,
            )
        ]
    )


def mail_to(inbox: Inbox, address: str) -> Any:
    (mail,) = [m for m in inbox.messages if m["To"] == address]
    return mail


def test_outreach_email_carries_the_one_click_link_service_email_does_not(
    inbox, app, agent, make_client, settings
):
    zoe = make_client(first_name="Zoë", email="zoe@example.de")
    write(agent, zoe, "Our new savings account is open.", Category.OUTREACH)
    write(agent, make_client(email="svc@example.de"), "Your statement is ready.", Category.SERVICE)
    Worker(concurrency=2, name="mailer").run_once()
    assert len(inbox.messages) == 2

    service = mail_to(inbox, "svc@example.de")
    assert service["List-Unsubscribe"] is None
    assert service["List-Unsubscribe-Post"] is None
    assert "unsubscribe" not in service.get_body(preferencelist=("plain",)).get_content().lower()

    outreach = mail_to(inbox, "zoe@example.de")
    assert outreach["List-Unsubscribe-Post"] == ONE_CLICK
    # A long header is folded after its colon; unfolded, its value is the one <URL>.
    (url,) = re.fullmatch(r"<([^<>\s]+)>", outreach["List-Unsubscribe"].strip()).groups()
    assert url == f"{settings.PUBLIC_URL}/portal/unsubscribe/{unsubscribe_token(zoe)}"
    # The same link in the footer, for people (the header is for mail systems).
    assert url in outreach.get_body(preferencelist=("plain",)).get_content()
    html = outreach.get_body(preferencelist=("html",)).get_content()
    assert f'href="{url}"' in html and "Stop news and offers from Acme Wealth" in html

    response = one_click(app, url)
    assert response.status_code == 200
    assert "You will no longer receive news and offers from Acme Wealth" in response.text
    assert "set-cookie" not in response.headers
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response.headers["Cache-Control"]
    zoe.refresh_from_db()
    assert zoe.outreach_opt_out is True and zoe.outreach_opt_out_at is not None
    (entry,) = consent_changes(zoe)
    assert (entry.actor_type, entry.actor_id) == (ActorType.CLIENT, str(zoe.pk))
    assert entry.data["via"] == "unsubscribe_link"
    event = ActivityEvent.objects.get(client=zoe, type=ActivityType.CONSENT_CHANGED)
    assert event.actor_type == ActorType.CLIENT


def test_the_notification_only_email_carries_it_too(inbox, app, agent, make_client, settings):
    settings.EMAIL_NOTIFY_ONLY = True
    settings.PORTAL_URL = "https://bank.example/cabinet"
    client = make_client(email="n@example.com")
    write(agent, client, "News", Category.OUTREACH)
    Worker(concurrency=1, name="mailer").run_once()
    (mail,) = inbox.messages
    link = f"{settings.PUBLIC_URL}/portal/unsubscribe/{unsubscribe_token(client)}"
    assert mail["List-Unsubscribe"].strip() == f"<{link}>"
    assert mail["List-Unsubscribe-Post"] == ONE_CLICK


def test_without_a_public_address_no_link_is_made(inbox, agent, make_client, settings):
    settings.PUBLIC_URL = ""
    write(agent, make_client(email="p@example.com"), "News", Category.OUTREACH)
    Worker(concurrency=1, name="mailer").run_once()
    (mail,) = inbox.messages
    assert mail["List-Unsubscribe"] is None
    (delivery,) = Delivery.objects.filter(channel=Channel.EMAIL)
    assert "headers" not in delivery.payload


def test_a_payload_cannot_add_other_headers(inbox, app, agent, make_client):
    client = make_client(email="h@example.com")
    write(agent, client, "News", Category.OUTREACH)
    delivery = Delivery.objects.get(channel=Channel.EMAIL)
    delivery.payload["headers"]["Bcc"] = "thief@example.com"
    delivery.payload["headers"]["X-Anything"] = "x"
    delivery.save(update_fields=["payload"])
    Worker(concurrency=1, name="mailer").run_once()
    (mail,) = inbox.messages
    assert mail["Bcc"] is None and mail["X-Anything"] is None
    assert mail["List-Unsubscribe-Post"] == ONE_CLICK
