"""What a message looks like on each delivery channel; `delivery` carries it there."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.html import escape, linebreaks
from django.utils.translation import gettext

from clientdesk.clients.consent import unsubscribe_token
from clientdesk.core.languages import client_language, supported_language
from clientdesk.core.time import iso_utc
from clientdesk.delivery.models import Channel, Delivery
from clientdesk.delivery.selectors import endpoint_get
from clientdesk.delivery.services.endpoints import active_channels, endpoint_channels
from clientdesk.delivery.services.queue import Outgoing, deliveries_create, delivery_create
from clientdesk.files.models import StoredFile
from clientdesk.files.services import file_signed_url
from clientdesk.messaging.models import Category, Direction, Message
from clientdesk.messaging.push import messages_pushes
from clientdesk.messaging.representations import attachment_representation
from clientdesk.messaging.selectors import MessageFiles, message_files

# How long a webhook's download links work (docs/WEBHOOKS.md).
ATTACHMENT_URL_SECONDS = 3600


def _time(message: Message) -> str:
    return iso_utc(message.created_at)


def _webhook_attachment(file: StoredFile) -> dict[str, Any]:
    """A file as a webhook carries it: with a signed download link valid an hour, when
    Clientdesk's public address (CLIENTDESK_PUBLIC_URL) is set; null without one."""
    url = None
    if settings.PUBLIC_URL:
        url = file_signed_url(
            file=file, base_url=settings.PUBLIC_URL, expires_in=ATTACHMENT_URL_SECONDS
        )
    return {**attachment_representation(file), "url": url}


def webhook_payload(
    message: Message,
    *,
    type: str = "message.sent",
    timestamp: datetime | None = None,
    files: MessageFiles | None = None,
) -> dict[str, Any]:
    if files is None:
        files = message_files(message)
    sender = message.sender
    shape: dict[str, Any] = {
        "id": str(message.id),
        "body": message.body,
        "created_at": _time(message),
        "sender": ({"id": str(sender.pk), "name": sender.display_name} if sender else None),
        "category": message.category,
        "broadcast_id": str(message.broadcast_id) if message.broadcast_id else None,
        "attachments": [_webhook_attachment(f) for f in files.attachments],
        "document_requests": [
            {"id": str(r.id), "label": r.label, "status": r.status} for r in files.document_requests
        ],
    }
    if type != "message.sent":  # what the client did: which way, when read, answering what
        shape["direction"] = message.direction
        shape["read_at"] = iso_utc(message.read_at)
        shape["in_reply_to"] = str(message.in_reply_to_id) if message.in_reply_to_id else None
    if type == "message.reply_overdue":
        shape["reply_state"] = message.reply_state
        shape["reply_due_at"] = iso_utc(message.reply_due_at)
    return {
        "type": type,
        "timestamp": iso_utc(timestamp) if timestamp else _time(message),
        "data": {
            "message": shape,
            "client": {"id": str(message.client_id), "external_id": message.client.external_id},
        },
    }


def email_payload(message: Message) -> dict[str, Any]:
    """The e-mail of `message` in the client's language (subject, notification text, footer;
    the message itself is the staff's text, never translated): an outreach message also
    carries its one-click unsubscribe link (RFC 8058) in the headers and the footer; a service
    message never does."""
    with client_language(message.client.language):
        return _email_payload(message)


def _email_payload(message: Message) -> dict[str, Any]:
    business = settings.BUSINESS_NAME
    unsubscribe = _unsubscribe(message)
    if settings.EMAIL_NOTIFY_ONLY and settings.PORTAL_URL:
        payload = _notification_email(message, business)
    else:
        sender = message.sender.display_name if message.sender else business
        text = f"{message.body}\n\n— {sender}, {business}\n"
        # Plain HTML: the text escaped, paragraphs kept; no images, no tracking.
        html = (
            '<div style="font-family: sans-serif; font-size: 15px; line-height: 1.5">'
            f"{linebreaks(escape(message.body))}"
            f'<p style="color: #5b6675">— {escape(sender)}, {escape(business)}</p></div>'
        )
        payload = {
            "to": message.client.email,
            "subject": _subject(message.client.language, business),
            "text": text,
            "html": html,
            "from_name": business,
            "reply_to": settings.EMAIL_REPLY_TO,
        }
    if unsubscribe:
        footer = gettext("Stop news and offers from %(business)s") % {"business": business}
        payload["text"] += f"\n{footer}\n{unsubscribe}\n"
        payload["html"] += (
            '<p style="color: #5b6675; font-size: 13px">'
            f'<a href="{escape(unsubscribe)}">{escape(footer)}</a></p>'
        )
        payload["headers"] = {
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    return payload


# The subject line in languages whose catalog Clientdesk does not have yet (the rest of their
# e-mail is English until it does); a language with a catalog (settings.LANGUAGES) uses it.
SUBJECTS_WITHOUT_CATALOG = {
    "it": "Un messaggio da {business}",
    "nl": "Een bericht van {business}",
    "pl": "Wiadomość od {business}",
    "sv": "Ett meddelande från {business}",
    "da": "En besked fra {business}",
    "nb": "En melding fra {business}",
    "fi": "Viesti yritykseltä {business}",
    "cs": "Zpráva od {business}",
    "tr": "{business} size bir mesaj gönderdi",
    "uk": "Повідомлення від {business}",
    "ru": "Сообщение от {business}",
    "el": "Ένα μήνυμα από {business}",
    "ja": "{business}からのメッセージ",
    "zh": "来自{business}的消息",
}


def _subject(language: object, business: str) -> str:
    """Called in the client's language (client_language)."""
    if isinstance(language, str) and supported_language(language) == settings.LANGUAGE_CODE:
        base = language[:35].lower().replace("_", "-").split("-")[0]
        if base in SUBJECTS_WITHOUT_CATALOG:
            return SUBJECTS_WITHOUT_CATALOG[base].format(business=business)
    return gettext("A message from %(business)s") % {"business": business}


def _unsubscribe(message: Message) -> str:
    """The unsubscribe link of an outreach message; empty for a service message, and when
    Clientdesk's public address (CLIENTDESK_PUBLIC_URL) is not set, as no link could reach it."""
    if message.category != Category.OUTREACH or not settings.PUBLIC_URL:
        return ""
    token = unsubscribe_token(message.client)
    return settings.PUBLIC_URL + reverse("portal:unsubscribe", kwargs={"token": token})


def _notification_email(message: Message, business: str) -> dict[str, Any]:
    """The email as a notification only: the text stays in the portal, behind its sign-in
    (what regulated businesses prefer to plain-text mail)."""
    url = settings.PORTAL_URL
    line = gettext("You have a new message from %(business)s in your online cabinet.") % {
        "business": business
    }
    link = gettext("Open your online cabinet")
    text = f"{line}\n\n{url}\n"
    html = (
        '<div style="font-family: sans-serif; font-size: 15px; line-height: 1.5">'
        f"<p>{escape(line)}</p>"
        f'<p><a href="{escape(url)}">{escape(link)}</a></p></div>'
    )
    return {
        "to": message.client.email,
        "subject": gettext("New message from %(business)s") % {"business": business},
        "text": text,
        "html": html,
        "from_name": business,
    }


def messages_deliveries_create(
    messages: Sequence[Message],
    *,
    notify_at: Sequence[datetime | None] | None = None,
    files: Sequence[MessageFiles] | None = None,
) -> list[list[Delivery]]:
    """Queue written messages, all in one insert, inside the transaction that writes them: ours
    on every active channel (`message.sent`), a client's to the outgoing endpoint
    (`message.received`). `notify_at`: per message, when its deliveries may go first (None: at
    once; a broadcast's quiet hours). Returns each message's deliveries, in the order given."""
    endpoint = endpoint_get()
    not_before = list(notify_at) if notify_at is not None else [None] * len(messages)
    carried = list(files) if files is not None else [MessageFiles()] * len(messages)
    outgoing: list[Outgoing] = []
    owners: list[int] = []
    for index, message in enumerate(messages):
        if message.direction == Direction.OUT:
            channels = endpoint_channels(endpoint, client=message.client)
        else:
            channels = [Channel.WEBHOOK] if endpoint is not None else []
        for channel in channels:
            outgoing.append(
                Outgoing(
                    channel,
                    message.client,
                    message.id,
                    _payload(channel, message, carried[index]),
                    not_before[index],
                )
            )
            owners.append(index)
    for index, push in messages_pushes(messages, not_before=not_before):
        outgoing.append(push)  # one per device of the client (messaging/push.py)
        owners.append(index)
    queued: list[list[Delivery]] = [[] for _ in messages]
    for index, delivery in zip(owners, deliveries_create(outgoing=outgoing), strict=True):
        queued[index].append(delivery)
    return queued


def _payload(channel: Channel, message: Message, files: MessageFiles) -> dict[str, Any]:
    if channel == Channel.EMAIL:
        return email_payload(message)
    if message.direction == Direction.IN:
        return webhook_payload(message, type="message.received", files=files)
    return webhook_payload(message, files=files)


def message_event_webhook_create(message: Message, *, type: str, at: datetime) -> Delivery | None:
    """Queue `message.read` or `message.reply_overdue` to the outgoing endpoint, when one is set
    up (while it is disabled the delivery waits, like a message's). The event gets its own
    subject id, so it never shows as the message's own delivery."""
    if Channel.WEBHOOK not in active_channels(client=message.client):
        return None
    return delivery_create(
        channel=Channel.WEBHOOK,
        client=message.client,
        subject_id=uuid.uuid5(message.id, type),
        payload=webhook_payload(message, type=type, timestamp=at),
    )
