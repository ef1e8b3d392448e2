"""Reads for follow-up: the policy, messages across clients and the conversations list, both
paged by cursor along one index each."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from clientdesk.accounts.models import User
from clientdesk.clients.selectors import client_search
from clientdesk.core.bounded import Refused, position_decode, position_encode, refused
from clientdesk.core.pagination import keyset_beyond
from clientdesk.followup.models import Conversation, FollowUpPolicy
from clientdesk.messaging.models import (
    Direction,
    DocumentRequest,
    DocumentStatus,
    Message,
    ReplyState,
)
from clientdesk.messaging.selectors import check_can_view

OPEN_STATES = (ReplyState.AWAITING, ReplyState.OVERDUE)
# A client search narrows conversations to at most this many clients.
SEARCH_CLIENTS = 200


def policy_get(*, for_update: bool = False) -> FollowUpPolicy:
    """The one policy row, created with the defaults the first time it is asked for."""
    policy, _ = FollowUpPolicy.objects.get_or_create(pk=1)
    if for_update:
        return FollowUpPolicy.objects.select_for_update().get(pk=1)
    return policy


# --- cursors ----------------------------------------------------------------------------------


def _position(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        return position_decode(cursor)
    except Refused as error:
        raise refused("cursor", error) from error


@dataclass(frozen=True)
class CursorPage:
    items: list[Any]
    next_cursor: str | None


# --- messages across clients ------------------------------------------------------------------


@dataclass(frozen=True)
class MessageFilters:
    client_id: uuid.UUID | None = None
    direction: str | None = None
    awaiting_reply: bool | None = None
    needs_response: bool | None = None
    overdue: bool | None = None
    documents: str | None = None  # "open" or "received"
    sender_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


def _documents(wanted: str) -> Q:
    """Messages with a document request still open, or whose every request was received."""
    open_requests = DocumentRequest.objects.filter(
        message=OuterRef("pk"), status=DocumentStatus.OPEN
    )
    if wanted == "open":
        return Q(Exists(open_requests))
    return Q(Exists(DocumentRequest.objects.filter(message=OuterRef("pk")))) & ~Q(
        Exists(open_requests)
    )


def _clock(direction: str, wanted: bool) -> Q:
    open_clock = Q(direction=direction, reply_state__in=OPEN_STATES)
    return open_clock if wanted else ~open_clock


def messages_list(
    *, user: User, filters: MessageFilters, cursor: str | None = None, limit: int = 50
) -> CursorPage:
    """Messages across clients, newest first, after `cursor`; `awaiting_reply` is ours waiting
    for the client, `needs_response` theirs waiting for us (true: open or overdue)."""
    check_can_view(user)
    messages: QuerySet[Message] = Message.objects.select_related("sender", "client")
    if filters.client_id is not None:
        messages = messages.filter(client_id=filters.client_id)
    if filters.direction is not None:
        messages = messages.filter(direction=filters.direction)
    if filters.awaiting_reply is not None:
        messages = messages.filter(_clock(Direction.OUT, filters.awaiting_reply))
    if filters.needs_response is not None:
        messages = messages.filter(_clock(Direction.IN, filters.needs_response))
    if filters.overdue is not None:
        late = Q(reply_state=ReplyState.OVERDUE)
        messages = messages.filter(late if filters.overdue else ~late)
    if filters.documents is not None:
        messages = messages.filter(_documents(filters.documents))
    if filters.sender_id is not None:
        messages = messages.filter(sender_id=filters.sender_id)
    if filters.since is not None:
        messages = messages.filter(created_at__gte=filters.since)
    if filters.until is not None:
        messages = messages.filter(created_at__lt=filters.until)
    if cursor:
        at_time, after_id = _position(cursor)
        messages = messages.filter(
            keyset_beyond(Message, created_at=at_time, pk=after_id, descending=True)
        )
    rows = list(messages.order_by("-created_at", "-id")[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = position_encode(last.created_at, last.id)
    return CursorPage(items=rows[:limit], next_cursor=next_cursor)


# --- conversations ----------------------------------------------------------------------------

# View name → (sort field, ascending): "all" is newest activity first; the clock views put the
# most urgent (earliest due, longest overdue) first.
VIEWS: dict[str, tuple[str, bool]] = {
    "all": ("last_message_at", False),
    "awaiting": ("reply_due_at", True),
    "needs-response": ("response_due_at", True),
    "overdue": ("overdue_since", True),
}
VIEW_LABELS = {
    "all": "All",
    "awaiting": "Awaiting reply",
    "needs-response": "Needs response",
    "overdue": "Overdue",
    # Messages, not conversations: ours still waiting for a requested document.
    "documents": "Documents pending",
}


@dataclass(frozen=True)
class ConversationFilters:
    view: str = "all"
    search: str = ""
    direction: str | None = None
    sender_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


def conversations_list(
    *, user: User, filters: ConversationFilters, cursor: str | None = None, limit: int = 25
) -> CursorPage:
    check_can_view(user)
    field, ascending = VIEWS[filters.view]
    rows: QuerySet[Conversation] = Conversation.objects.select_related(
        "client", "last_message", "last_sender"
    )
    if filters.view != "all":
        rows = rows.filter(**{f"{field}__isnull": False})
    if filters.search.strip():
        found = client_search(query=filters.search, size=SEARCH_CLIENTS).items
        rows = rows.filter(client_id__in=[c.id for c in found])
    if filters.direction is not None:
        rows = rows.filter(last_direction=filters.direction)
    if filters.sender_id is not None:
        rows = rows.filter(last_sender_id=filters.sender_id)
    if filters.since is not None:
        rows = rows.filter(last_message_at__gte=filters.since)
    if filters.until is not None:
        rows = rows.filter(last_message_at__lt=filters.until)
    if cursor:
        at_time, after_id = _position(cursor)
        op = "gt" if ascending else "lt"
        rows = rows.filter(
            Q(**{f"{field}__{op}": at_time}) | Q(**{field: at_time, f"client_id__{op}": after_id})
        )
    order = [field, "client_id"] if ascending else [f"-{field}", "-client_id"]
    page = list(rows.order_by(*order)[: limit + 1])
    next_cursor = None
    if len(page) > limit:
        last = page[limit - 1]
        next_cursor = position_encode(getattr(last, field), last.client_id)
    return CursorPage(items=page[:limit], next_cursor=next_cursor)
