"""Reads of the client's side: the inbox, newest first, with a cursor."""

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from clientdesk.clients.models import Client
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.live import live_event_head
from clientdesk.messaging.models import Direction, Message


@dataclass(frozen=True)
class Inbox:
    items: list[Message]
    unread_count: int
    next: str | None
    last_event_id: int


def _encode(message: Message) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        if len(cursor) > 200 or not cursor.isascii():
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, message_id = raw.partition("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError
        return when, uuid.UUID(message_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise ValidationFailed(
            "before must be the `next` value of a previous page.",
            errors={"before": ["Not a cursor this API issued."]},
        ) from error


def portal_inbox(*, client: Client, limit: int, before: str | None) -> Inbox:
    # The event head first: a stream started from it misses nothing committed after this list.
    head = live_event_head()
    queryset = (
        Message.objects.filter(client=client)
        .select_related("sender")
        .order_by("-created_at", "-id")
    )
    if before:
        when, message_id = _decode(before)
        queryset = queryset.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=message_id))
    rows = list(queryset[: limit + 1])
    unread = Message.objects.filter(
        client=client, direction=Direction.OUT, read_at__isnull=True
    ).count()
    items = rows[:limit]
    return Inbox(
        items=items,
        unread_count=unread,
        next=_encode(items[-1]) if len(rows) > limit else None,
        last_event_id=head,
    )
