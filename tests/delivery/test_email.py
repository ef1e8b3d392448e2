"""Email delivery through a real SMTP server on loopback (aiosmtpd)."""

from typing import Any

import pytest

from clientdesk.delivery.models import Channel, Delivery, DeliveryStatus, OutgoingEndpoint
from clientdesk.delivery.worker import Worker
from tests.mail import smtp_inbox
from tests.sending import send_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(settings: Any):
    with smtp_inbox(settings) as inbox:
        yield inbox


@pytest.fixture
def email_on(administrator):
    OutgoingEndpoint.objects.create(
        pk=1, url="https://example.invalid/x", enabled=False, email_enabled=True
    )


def send(agent, client, body):
    return send_text(agent, client, body)


def test_message_is_emailed_with_text_html_sender_name_and_message_id(
    inbox, email_on, agent, make_client
):
    client = make_client(first_name="Zoë", email="zoe@example.de")
    send(agent, client, "Hi {{firstName}},\n\nplease send <your> documents.")
    Worker(concurrency=1, name="mailer").run_once()

    delivery = Delivery.objects.get(channel=Channel.EMAIL)
    assert (delivery.channel, delivery.status) == (Channel.EMAIL, DeliveryStatus.DELIVERED)
    (mail,) = inbox.messages
    assert mail["To"] == "zoe@example.de"
    assert mail["From"].addresses[0].display_name == "Acme Wealth"
    assert mail["Subject"] == "A message from Acme Wealth"
    assert delivery.webhook_id in mail["Message-ID"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Hi Zoë," in text and "please send <your> documents." in text
    assert "&lt;your&gt;" in html and "<your>" not in html
    assert "<img" not in html.lower()  # no tracking pixels


def test_clients_without_an_address_get_no_email(inbox, email_on, agent, make_client):
    send(agent, make_client(email=""), "Hello")
    assert not Delivery.objects.filter(channel=Channel.EMAIL).exists()


def test_smtp_refusal_is_retried_with_the_same_message_id(inbox, email_on, agent, make_client):
    inbox.fail_next = 1
    send(agent, make_client(email="a@example.com"), "Hello")
    Worker(concurrency=1, name="mailer").run_once()
    delivery = Delivery.objects.get(channel=Channel.EMAIL)
    assert delivery.status == DeliveryStatus.PENDING
    assert "451" in delivery.last_error
    Worker(concurrency=1, name="mailer").run_once()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert len(inbox.messages) == 1
    assert delivery.attempts.count() == 2


def test_subject_is_in_the_clients_language_and_replies_go_to_the_configured_address(
    inbox, email_on, agent, make_client, settings
):
    settings.EMAIL_REPLY_TO = "support@acme.example"
    send(agent, make_client(language="de", email="anna@example.de"), "Hallo")
    send(agent, make_client(language="pt-br", email="joao@example.br"), "Olá")
    send(agent, make_client(language="sw", email="x@example.com"), "Hi")
    # Languages without a catalog yet keep their subject line; the rest of the e-mail is English.
    send(agent, make_client(language="nb", email="ola@example.no"), "Hei")
    send(agent, make_client(language="ja", email="yuki@example.jp"), "こんにちは")
    Worker(concurrency=5, name="mailer").run_once()
    subjects = {m["To"]: m["Subject"] for m in inbox.messages}
    assert subjects == {
        "anna@example.de": "Eine Nachricht von Acme Wealth",
        "joao@example.br": "Uma mensagem de Acme Wealth",
        "x@example.com": "A message from Acme Wealth",
        "ola@example.no": "En melding fra Acme Wealth",
        "yuki@example.jp": "Acme Wealthからのメッセージ",
    }
    assert {m["Reply-To"] for m in inbox.messages} == {"support@acme.example"}


def test_without_a_reply_to_setting_there_is_no_reply_to_header(
    inbox, email_on, agent, make_client
):
    send(agent, make_client(email="zoe@example.com"), "Hi")
    Worker(concurrency=1, name="mailer").run_once()
    (mail,) = inbox.messages
    assert mail["Reply-To"] is None
