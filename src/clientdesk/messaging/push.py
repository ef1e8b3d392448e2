"""What a message looks like as a Web Push notification, one per device of the client;
`delivery` carries it there (`channels.send_push`). Queued with the message's other deliveries
by `outbound.messages_deliveries_create`, inside the writer's transaction."""

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from clientdesk.core.languages import supported_language
from clientdesk.delivery import webpush
from clientdesk.delivery.models import Channel, PushSubscription
from clientdesk.delivery.services.push import push_receipt_token
from clientdesk.delivery.services.queue import Outgoing
from clientdesk.messaging.models import Category, Direction, Message

TITLE_CHARS = 120


def messages_pushes(
    messages: Sequence[Message], *, not_before: Sequence[datetime | None]
) -> Iterator[tuple[int, Outgoing]]:
    """A push per message from the business and device of its client, with the index of its
    message; the devices of every client in one read."""
    clients = {m.client_id for m in messages if m.direction == Direction.OUT}
    if not clients:
        return
    devices: dict[uuid.UUID, list[PushSubscription]] = {}
    for device in PushSubscription.objects.filter(client_id__in=clients).order_by(
        "created_at", "id"
    ):
        devices.setdefault(device.client_id, []).append(device)
    for index, message in enumerate(messages):
        if message.direction != Direction.OUT:
            continue
        for device in devices.get(message.client_id, []):
            yield (
                index,
                Outgoing(
                    Channel.PUSH,
                    message.client,
                    message.id,
                    push_payload(message, device),
                    not_before[index],
                    device.pk,
                ),
            )


def cabinet_url(message_id: uuid.UUID) -> str:
    """The cabinet opened at a message: absolute with CLIENTDESK_PUBLIC_URL set (Declarative
    Web Push needs that), else relative to Clientdesk's address, which the service worker
    resolves."""
    return f"{settings.PUBLIC_URL}{reverse('portal:cabinet')}?message={message_id}"


def push_payload(message: Message, device: PushSubscription) -> dict[str, Any]:
    """A push of `message` to one device: where it goes, the device's keys, the headers, and
    the notification as Declarative Web Push (`web_push: 8030`: shown by the browser itself
    where supported, by the cabinet's service worker elsewhere), with a minimal one for a push
    service that refuses the first as too large (413). The notification is at most 3,993 bytes
    of JSON (one RFC 8291 record). The message's text is in it only with
    CLIENTDESK_PUSH_INCLUDE_BODY on: a lock screen is not the cabinet."""
    business = settings.BUSINESS_NAME[:TITLE_CHARS]
    navigate = cabinet_url(message.id)
    receipt = push_receipt_token(subscription_id=device.pk, message_id=message.id)
    language = supported_language(message.client.language)
    notification: dict[str, Any] = {"title": business, "body": "", "navigate": navigate}
    notification["lang"] = language
    content: dict[str, Any] = {
        "web_push": 8030,
        "notification": notification,
        "message_id": str(message.id),
        "receipt": receipt,
    }
    if settings.PUSH_INCLUDE_BODY:
        notification["body"] = fitted_body(content, message.body)
    else:
        with translation.override(language):
            notice = gettext("You have a new message from %(business)s")
        notification["body"] = notice % {"business": business}
    minimal = {
        "web_push": 8030,
        "notification": {"title": business, "navigate": navigate},
        "message_id": str(message.id),
        "receipt": receipt,
    }
    return {
        "endpoint": device.endpoint,
        "p256dh": device.p256dh,
        "auth": device.auth,
        "ttl": settings.PUSH_TTL_SECONDS,
        # What the business writes to one client is worth waking a phone for; news can wait.
        "urgency": "normal" if message.category == Category.OUTREACH else "high",
        # One topic per client: a device away for a while gets the newest push, not a pile.
        "topic": webpush.topic_for(str(message.client_id)),
        "content": content,
        "minimal": minimal,
    }


def encoded_size(content: dict[str, Any]) -> int:
    """Bytes of `content` as the channel sends it (compact JSON, UTF-8)."""
    return len(json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode())


def fitted_body(content: dict[str, Any], body: str) -> str:
    """`body`, cut (with an ellipsis) so that `content` with it fits one push record."""
    notification = content["notification"]
    notification["body"] = body
    if encoded_size(content) <= webpush.MAX_PLAINTEXT:
        return body
    low, high = 0, len(body)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        notification["body"] = body[:middle] + "…"
        if encoded_size(content) <= webpush.MAX_PLAINTEXT:
            low = middle
        else:
            high = middle - 1
    notification["body"] = body[:low] + "…"
    return notification["body"]
