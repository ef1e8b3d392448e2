"""Reply notifications: which member of staff hears of a client's reply, written with the reply,
and each user's read state (listed, counted, marked read), announced on their staff streams.

Who hears: the sender of the message the reply answers (`in_reply_to`); a reply that names none,
or names a message that is not ours, goes to the sender of the client's latest message from the
business. A broadcast's messages have their creator as sender, so the creator hears of the
replies to it. Nobody else is notified (the Messages page shows every conversation anyway), and
a deactivated sender is not.

Events, on the staff stream of that user only (`messaging/streams.py`):
`notification.created` (one reply) and `notification.read` (some were marked read, so every tab
and device of the user drops them from its count)."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery, UUIDField
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.bounded import Refused, position_decode, position_encode, refused
from clientdesk.core.errors import NotFound, ValidationFailed
from clientdesk.core.live.recording import live_event_record
from clientdesk.core.pagination import keyset_beyond
from clientdesk.core.time import iso_utc
from clientdesk.followup.models import ReplyNotification
from clientdesk.messaging.hooks import MessagesAnnounced
from clientdesk.messaging.models import Direction, Message
from clientdesk.messaging.selectors import check_can_view

CREATED = "notification.created"
READ = "notification.read"
# What a notification shows of the reply: enough for a toast, never the whole text.
EXCERPT_CHARS = 140
# Ids one request may mark read.
MAX_IDS = 100


def excerpt(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


# --- written with the reply -------------------------------------------------------------------


def _answered_senders(replies: Sequence[Message]) -> dict[uuid.UUID, uuid.UUID]:
    """Reply id → the staff user it answers (see the module's docstring); two statements for
    any number of replies."""
    named = {m.in_reply_to_id for m in replies if m.in_reply_to_id}
    ours = dict(
        Message.objects.filter(
            pk__in=named, direction=Direction.OUT, sender__isnull=False, sender__is_active=True
        ).values_list("pk", "sender_id")
        if named
        else ()
    )
    answered: dict[uuid.UUID, uuid.UUID] = {}
    unnamed: list[Message] = []
    for reply in replies:
        sender = ours.get(reply.in_reply_to_id) if reply.in_reply_to_id else None
        if sender is not None:
            answered[reply.pk] = sender
        else:
            unnamed.append(reply)
    if unnamed:
        latest = Message.objects.filter(
            client_id=OuterRef("pk"), direction=Direction.OUT, sender__isnull=False
        ).order_by("-created_at", "-id")
        last_sender = dict(
            Client.objects.filter(pk__in={m.client_id for m in unnamed})
            .annotate(
                last_sender=Subquery(latest.values("sender_id")[:1], output_field=UUIDField())
            )
            .values_list("pk", "last_sender")
        )
        active = set(
            User.objects.filter(
                pk__in={s for s in last_sender.values() if s}, is_active=True
            ).values_list("pk", flat=True)
        )
        for reply in unnamed:
            sender = last_sender.get(reply.client_id)
            if sender in active:
                answered[reply.pk] = sender
    return answered


def notification_representation(
    notification: ReplyNotification, message: Message
) -> dict[str, Any]:
    """A notification as its user sees it (the API and the live event alike)."""
    return {
        "id": str(notification.id),
        "user_id": str(notification.user_id),
        "client_id": str(notification.client_id),
        "client_name": message.client.full_name,
        "message_id": str(message.id),
        "in_reply_to": str(message.in_reply_to_id) if message.in_reply_to_id else None,
        "excerpt": excerpt(message.body),
        "created_at": iso_utc(notification.created_at),
        "read_at": iso_utc(notification.read_at),
    }


def reply_notifications_announced(announced: MessagesAnnounced) -> None:
    """The writer's `messages_announced` hook: a notification row for each client reply that
    answers a member of staff, and its live event, in the reply's transaction."""
    replies = [m for m in announced.messages if m.direction == Direction.IN]
    if not replies:
        return
    answered = _answered_senders(replies)
    pairs = [
        (
            ReplyNotification(
                user_id=answered[m.pk], message=m, client_id=m.client_id, created_at=m.created_at
            ),
            m,
        )
        for m in replies
        if m.pk in answered
    ]
    if not pairs:
        return
    ReplyNotification.objects.bulk_create(n for n, _ in pairs)
    announced.live_events.extend(
        (m.client_id, CREATED, notification_representation(n, m)) for n, m in pairs
    )


# --- reads ------------------------------------------------------------------------------------


def notifications_unread_count(*, user: User) -> int:
    """The badge: one index range (the partial index of unread rows)."""
    return ReplyNotification.objects.filter(user=user, read_at__isnull=True).count()


@dataclass(frozen=True)
class NotificationPage:
    items: list[ReplyNotification]
    next_cursor: str | None
    unread_count: int


def notifications_list(
    *, user: User, unread: bool | None = None, cursor: str | None = None, limit: int = 20
) -> NotificationPage:
    """The user's own notifications, newest first, after `cursor`; only theirs, ever."""
    check_can_view(user)
    rows: QuerySet[ReplyNotification] = ReplyNotification.objects.filter(user=user).select_related(
        "message__client"
    )
    if unread is not None:
        rows = rows.filter(read_at__isnull=unread)
    if cursor:
        try:
            at_time, after_id = position_decode(cursor)
        except Refused as error:
            raise refused("cursor", error) from error
        rows = rows.filter(
            keyset_beyond(ReplyNotification, created_at=at_time, pk=after_id, descending=True)
        )
    found = list(rows.order_by("-created_at", "-id")[: limit + 1])
    next_cursor = None
    if len(found) > limit:
        last = found[limit - 1]
        next_cursor = position_encode(last.created_at, last.id)
    return NotificationPage(
        items=found[:limit],
        next_cursor=next_cursor,
        unread_count=notifications_unread_count(user=user),
    )


# --- marking read -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkedRead:
    marked: int
    unread_count: int


def notifications_mark_read(
    *,
    user: User,
    ids: Sequence[uuid.UUID] | None = None,
    client_id: uuid.UUID | None = None,
    until: datetime | None = None,
) -> MarkedRead:
    """Mark the user's own notifications read: the ones named (`ids`; one that is not theirs,
    or does not exist, refuses the whole request, and nothing is marked), a conversation's
    (`client_id`: what opening it does), or all up to `until` (a high-water mark: one that
    arrives after the user looked is not swept away unseen). Exactly one of the three. Marking
    a read one again changes nothing (the first `read_at` is kept)."""
    check_can_view(user)
    given = [
        name
        for name, value in (("ids", ids), ("client_id", client_id), ("until", until))
        if value is not None
    ]
    if len(given) != 1:
        raise ValidationFailed(
            "Name the notifications to mark read: exactly one of ids, client_id or until.",
            errors={"body": ["Exactly one of ids, client_id or until."]},
        )
    rows = ReplyNotification.objects.filter(user=user)
    if ids is not None:
        wanted = set(ids)
        if not wanted or len(wanted) > MAX_IDS:
            raise ValidationFailed(
                f"Name from 1 to {MAX_IDS} notifications.",
                errors={"ids": [f"From 1 to {MAX_IDS} ids."]},
            )
        found = set(rows.filter(pk__in=wanted).values_list("pk", flat=True))
        missing = sorted(str(i) for i in wanted - found)
        if missing:
            # Another user's notification reads exactly as one that does not exist.
            raise NotFound(f"No notification {missing[0]}.", errors={"ids": missing[:10]})
        rows = rows.filter(pk__in=wanted)
    elif client_id is not None:
        rows = rows.filter(client_id=client_id)
    else:
        rows = rows.filter(created_at__lte=until)
    now = timezone.now()
    with transaction.atomic():
        marked = rows.filter(read_at__isnull=True).update(read_at=now)
        unread = notifications_unread_count(user=user)
        if marked:
            # Last in the transaction (the live-event lock); the subject is the user.
            live_event_record(
                client_id=user.pk,
                type=READ,
                data={"user_id": str(user.pk), "marked": marked, "read_at": iso_utc(now)},
            )
    return MarkedRead(marked=marked, unread_count=unread)
