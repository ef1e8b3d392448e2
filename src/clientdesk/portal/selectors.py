"""Reads of the client's side: the inbox, newest first, with a cursor."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from clientdesk.clients.models import Client
from clientdesk.core.bounded import Refused, position_decode, position_encode, refused
from clientdesk.core.live.log import live_event_head
from clientdesk.messaging.models import Direction, Message


@dataclass(frozen=True)
class Inbox:
    items: list[Message]
    unread_count: int
    next: str | None
    last_event_id: int


def _before(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        return position_decode(cursor)
    except Refused as error:
        raise refused("before", error) from error


def portal_inbox(*, client: Client, limit: int, before: str | None) -> Inbox:
    # The event head first: a stream started from it misses nothing committed after this list.
    head = live_event_head()
    queryset = (
        Message.objects.filter(client=client)
        .select_related("sender")
        .order_by("-created_at", "-id")
    )
    if before:
        when, message_id = _before(before)
        queryset = queryset.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=message_id))
    rows = list(queryset[: limit + 1])
    unread = Message.objects.filter(
        client=client, direction=Direction.OUT, read_at__isnull=True
    ).count()
    items = rows[:limit]
    return Inbox(
        items=items,
        unread_count=unread,
        next=position_encode(items[-1].created_at, items[-1].id) if len(rows) > limit else None,
        last_event_id=head,
    )
