"""Writes for follow-up: the policy, starting and answering clocks with each message, and turning
clocks overdue when their due time passes."""

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityType
from clientdesk.audit.services import activity_record, audit_append
from clientdesk.core import notify
from clientdesk.core.errors import PermissionDenied
from clientdesk.core.live.recording import live_event_record
from clientdesk.core.time import iso_utc
from clientdesk.followup.models import Conversation, FollowUpDue, FollowUpPolicy
from clientdesk.followup.permissions import FollowupPermission
from clientdesk.followup.policy import PolicyUnmet, policy_check, reply_due, response_due
from clientdesk.followup.selectors import policy_get
from clientdesk.messaging.models import (
    Direction,
    DocumentRequest,
    DocumentStatus,
    Message,
    ReplyState,
)
from clientdesk.messaging.outbound import message_event_webhook_create

OPEN_STATES = (ReplyState.AWAITING, ReplyState.OVERDUE)
# Due rows a worker turns overdue in one transaction: small, so its locks are brief.
OVERDUE_BATCH = 100

log = logging.getLogger(__name__)


def check_can_manage_policy(user: User) -> None:
    if not user.has_perm(FollowupPermission.MANAGE_FOLLOWUP_POLICY):
        raise PermissionDenied(
            "You need the 'Manage follow-up policy' permission (administrators have it)."
        )


def policy_update(*, user: User, data: dict[str, Any]) -> FollowUpPolicy:
    """Replace the policy, all fields or nothing: the whole policy is checked (each window can
    be met) before the one transaction that saves it. Clocks already running keep their due
    times."""
    check_can_manage_policy(user)
    checked = policy_check(data)
    with transaction.atomic():
        policy = policy_get(for_update=True)
        policy.reply_window_hours = checked.reply_window_hours
        policy.response_window_hours = checked.response_window_hours
        policy.timezone = checked.timezone
        policy.business_hours = checked.business_hours
        policy.holidays = checked.holidays
        policy.updated_by = user
        policy.save()
        audit_append(
            actor=user,
            action="followup.policy_updated",
            object_type="followup_policy",
            object_id=policy.pk,
            created_at=timezone.now(),
            data={
                "reply_window_hours": checked.reply_window_hours,
                "response_window_hours": checked.response_window_hours,
                "timezone": checked.timezone,
                "business_hours": checked.business_hours,
                "holidays": checked.holidays or None,
            },
        )
    return policy


def _overdue_since(conversation: Conversation) -> datetime | None:
    overdue = [
        due
        for due, late in (
            (conversation.reply_due_at, conversation.reply_overdue),
            (conversation.response_due_at, conversation.response_overdue),
        )
        if late and due is not None
    ]
    return min(overdue, default=None)


def followup_messages_written(messages: Sequence[Message]) -> None:
    """Move the clocks for messages just written, in their transaction, as if each had been
    written alone in the order given: ours answers the client's open messages and may start a
    reply clock; the client's answers our waiting messages and opens a response clock unless one
    is already running. A statement per kind of change, whatever the number of messages.

    The writer holds the clients' rows locked: the conversation's mutex (two messages of one
    client at once must not both open a response clock; the overdue worker never locks it, so
    no lock cycle). Then the same order as the overdue job: due rows, messages, conversation."""
    if not messages:
        return
    inbound = {m.client_id for m in messages if m.direction == Direction.IN}
    # Clients already waiting for our response, before these messages.
    waiting = set(
        Message.objects.filter(
            client_id__in=inbound, direction=Direction.IN, reply_state__in=OPEN_STATES
        )
        .order_by()
        .values_list("client_id", flat=True)
        .distinct()
        if inbound
        else ()
    )
    answering: dict[tuple[Any, str], datetime] = {}
    for message in messages:
        answering.setdefault((message.client_id, _other(message.direction)), message.created_at)
    # What the conversations say before these messages (read, not locked: the overdue job
    # locks a conversation last, so a writer may lock it only after the due rows and messages).
    before = _conversations_read({m.client_id for m in messages})
    _answer_stored(_possibly_open(answering, before))
    # Our messages still asking for documents stay unanswered by a reply (the writer has
    # written the requests and received those the reply answers).
    asking = set(
        DocumentRequest.objects.filter(
            message__client_id__in=inbound, status=DocumentStatus.OPEN
        ).values_list("message_id", flat=True)
        if inbound
        else ()
    )
    still_awaiting = _awaiting_documents(inbound) if asking else {}
    # One client (a send, a reply): the conversation as read, written back with one UPDATE
    # that keeps what the overdue job may have set meanwhile (_conversation_store). Several (a
    # broadcast): locked now, after the clocks, and written with one upsert.
    single = len({m.client_id for m in messages}) == 1
    conversations = (
        before
        if single
        else {
            c.pk: c
            for c in Conversation.objects.select_for_update().filter(
                pk__in={m.client_id for m in messages}
            )
        }
    )
    policy_due = _PolicyDue()
    running: dict[tuple[Any, str], list[Message]] = {}  # clocks these messages started
    for message in messages:
        clocks = running.pop((message.client_id, _other(message.direction)), [])
        for answered in clocks:
            if answered.id in asking:
                continue
            answered.reply_state = ReplyState.ANSWERED
            answered.answered_at = message.created_at
        kept = [m for m in clocks if m.id in asking]
        if kept:
            running[(message.client_id, _other(message.direction))] = kept
        due: datetime | None = None
        if message.direction == Direction.OUT:
            waiting.discard(message.client_id)
            if message.expects_reply:
                due = message.reply_due_at or policy_due(reply_due, message)
        elif message.client_id not in waiting:
            due = policy_due(response_due, message)
        if due is not None:
            message.reply_due_at = due
            message.reply_state = ReplyState.AWAITING
            running.setdefault((message.client_id, message.direction), []).append(message)
            if message.direction == Direction.IN:
                waiting.add(message.client_id)
        conversation = conversations.setdefault(
            message.client_id, Conversation(client_id=message.client_id)
        )
        _conversation_follow(conversation, message)
        if message.direction == Direction.IN:
            _still_awaiting(conversation, still_awaiting.get(message.client_id), kept)
    _clocks_store(messages)
    if single:
        (conversation,) = conversations.values()
        _conversation_store(conversation, {m.direction for m in messages})
        return
    Conversation.objects.bulk_create(
        conversations.values(),
        update_conflicts=True,
        unique_fields=["client"],
        update_fields=[f.name for f in Conversation._meta.concrete_fields if not f.primary_key],
    )


def _conversations_read(client_ids: set[Any]) -> dict[Any, Conversation]:
    return {c.pk: c for c in Conversation.objects.filter(pk__in=client_ids)}


def _possibly_open(
    answering: dict[tuple[Any, str], datetime], conversations: dict[Any, Conversation]
) -> dict[tuple[Any, str], datetime]:
    """The clocks to close, less those the client's conversation says none of is running: our
    messages wait for a reply only while it has a reply due time, the client's for our response
    only while it has a response due time (overdue ones keep theirs). A client without a
    conversation has no clock: every message is written here, with its client's conversation,
    and messages go only with their client."""
    return {
        (client_id, direction): at
        for (client_id, direction), at in answering.items()
        if client_id in conversations and _running(conversations[client_id], direction)
    }


def _running(conversation: Conversation, direction: str) -> bool:
    if direction == Direction.OUT:
        return conversation.reply_due_at is not None or conversation.reply_overdue
    return conversation.response_due_at is not None or conversation.response_overdue


# Each side's overdue flag and due time; a message of the direction resets the other side's.
_SIDES: dict[str, tuple[str, str]] = {
    Direction.OUT: ("response_overdue", "response_due_at"),
    Direction.IN: ("reply_overdue", "reply_due_at"),
}


def _conversation_store(conversation: Conversation, directions: set[str]) -> None:
    """Write the conversation of a one-client write with one UPDATE (an INSERT when it has
    none yet). It was read without a lock, so the overdue job may have turned a clock overdue
    since: the UPDATE writes an overdue flag only on a side these messages answered (ours answer
    the client's, the client's ours) and keeps the other as the row has it, and works out
    `overdue_since` from the flags the row ends with."""
    if conversation._state.adding:
        Conversation.objects.bulk_create(
            [conversation],
            update_conflicts=True,
            unique_fields=["client"],
            update_fields=[f.name for f in Conversation._meta.concrete_fields if not f.primary_key],
        )
        return
    written = {_SIDES[d][0] for d in directions}
    kept = [flag for flag, _ in _SIDES.values() if flag not in written]
    values: dict[str, Any] = {
        f.attname: getattr(conversation, f.attname)
        for f in Conversation._meta.concrete_fields
        if not f.primary_key and f.name != "overdue_since" and f.name not in kept
    }
    # overdue_since for each combination of the kept flags, as `_overdue_since` gives it.
    since: list[tuple[dict[str, bool], datetime | None]] = []
    for combination in range(2 ** len(kept)):
        flags = {flag: bool(combination >> n & 1) for n, flag in enumerate(kept)}
        probe = Conversation(**{**values, **flags})
        since.append((flags, _overdue_since(probe)))
    if len({at for _, at in since}) == 1:  # (PostgreSQL types a CASE of NULLs as text)
        values["overdue_since"] = since[0][1]
    else:
        field = Conversation._meta.get_field("overdue_since")
        values["overdue_since"] = Case(
            *(When(Q(**flags), then=Value(at, output_field=field)) for flags, at in since),
            output_field=field,
        )
    Conversation.objects.filter(pk=conversation.pk).update(**values)


def _awaiting_documents(client_ids: set[Any]) -> dict[Any, tuple[datetime, bool]]:
    """Per client, the earliest due time of our messages whose clock still runs after the
    answers just stored (those asking for documents not all received) and whether any is
    overdue."""
    found: dict[Any, tuple[datetime, bool]] = {}
    rows = Message.objects.filter(
        client_id__in=client_ids,
        direction=Direction.OUT,
        reply_state__in=OPEN_STATES,
        reply_due_at__isnull=False,
    ).values_list("client_id", "reply_due_at", "reply_state")
    for client_id, due, state in rows:
        assert due is not None  # filtered
        earliest, late = found.get(client_id, (due, False))
        found[client_id] = (min(earliest, due), late or state == ReplyState.OVERDUE)
    return found


def _still_awaiting(
    conversation: Conversation,
    stored: tuple[datetime, bool] | None,
    written: list[Message],
) -> None:
    """A client's message answers our waiting messages except those still asking for
    documents: the conversation keeps awaiting their reply."""
    dues = [m.reply_due_at for m in written if m.reply_due_at is not None]
    late = False
    if stored is not None:
        dues.append(stored[0])
        late = stored[1]
    if dues:
        conversation.reply_due_at = min(dues)
        conversation.reply_overdue = late
        conversation.overdue_since = _overdue_since(conversation)


def _other(direction: str) -> str:
    return Direction.IN if direction == Direction.OUT else Direction.OUT


def _answer_stored(answering: dict[tuple[Any, str], datetime]) -> None:
    """Close the open clocks of earlier messages: for each (client, direction), at the time of
    the first message answering them. Due rows go first: the overdue worker locks a due row
    before its message, so the same order here cannot deadlock."""
    by_time: dict[datetime, dict[str, list[Any]]] = {}
    for (client_id, direction), at in answering.items():
        by_time.setdefault(at, {}).setdefault(direction, []).append(client_id)
    for at, clients in by_time.items():
        which = Q()
        for direction, client_ids in clients.items():
            which |= Q(client_id__in=client_ids, direction=direction)
        open_messages = Message.objects.filter(which, reply_state__in=OPEN_STATES).exclude(
            Exists(
                DocumentRequest.objects.filter(message=OuterRef("pk"), status=DocumentStatus.OPEN)
            )
        )
        FollowUpDue.objects.filter(message__in=open_messages.values("id")).delete()
        open_messages.update(reply_state=ReplyState.ANSWERED, answered_at=at)


class _PolicyDue:
    """Due times from the stored policy, read once per write and worked out once per rule and
    start time; None when the stored policy cannot give one: the message matters more than its
    clock, so it is kept without one. Administrators see why on the follow-up pages
    (policy_problem)."""

    def __init__(self) -> None:
        self._policy: FollowUpPolicy | None = None
        self._known: dict[tuple[Any, datetime], tuple[datetime | None, PolicyUnmet | None]] = {}

    def __call__(
        self, rule: Callable[[FollowUpPolicy, datetime], datetime], message: Message
    ) -> datetime | None:
        key = (rule, message.created_at)
        if key not in self._known:
            if self._policy is None:
                self._policy = policy_get()
            try:
                self._known[key] = (rule(self._policy, message.created_at), None)
            except PolicyUnmet as unmet:
                self._known[key] = (None, unmet)
        due, skipped = self._known[key]
        if skipped is not None:
            log.warning(
                "follow-up clock skipped for message %s (%s): %s",
                message.pk,
                message.direction,
                skipped,
            )
        return due


def _clocks_store(messages: Sequence[Message]) -> None:
    """Store the clock state the written messages ended with: an update per distinct state
    (one, for a broadcast), and a due row for each clock still running."""
    states: dict[tuple[str, datetime | None, datetime | None], list[Any]] = {}
    for message in messages:
        if message.reply_state != ReplyState.NONE:
            key = (message.reply_state, message.reply_due_at, message.answered_at)
            states.setdefault(key, []).append(message.pk)
    for (state, due, answered_at), ids in states.items():
        Message.objects.filter(pk__in=ids).update(
            reply_state=state, reply_due_at=due, answered_at=answered_at
        )
    running = [
        FollowUpDue(message=m, due_at=m.reply_due_at)
        for m in messages
        if m.reply_state == ReplyState.AWAITING and m.reply_due_at is not None
    ]
    if running:
        FollowUpDue.objects.bulk_create(running)
        notify.work_due()  # a worker sleeping until a later due time looks again


def _conversation_follow(conversation: Conversation, message: Message) -> None:
    """Bring the client's conversation up to date after `message` (in memory)."""
    conversation.last_message = message
    conversation.last_message_at = message.created_at
    conversation.last_direction = message.direction
    conversation.last_sender = message.sender
    if message.direction == Direction.OUT:
        conversation.unanswered_in = 0
        conversation.response_due_at = None
        conversation.response_overdue = False
        if message.reply_state == ReplyState.AWAITING and message.reply_due_at:
            current = conversation.reply_due_at
            conversation.reply_due_at = min(filter(None, (current, message.reply_due_at)))
    else:
        conversation.unanswered_in += 1
        conversation.reply_due_at = None
        conversation.reply_overdue = False
        if message.reply_state == ReplyState.AWAITING:
            conversation.response_due_at = message.reply_due_at
    conversation.overdue_since = _overdue_since(conversation)


def followup_overdue_job(now: datetime) -> datetime | None:
    """The worker's job (core.jobs)."""
    return followup_overdue_run(now=now)


def followup_overdue_run(*, now: datetime | None = None) -> datetime | None:
    """Turn the clocks whose due time has passed overdue, one batch in one transaction; returns
    when to run again (now when the batch was full, else the next due time, or None).

    Claiming and writing are one transaction: a worker killed mid-way rolls back and the rows
    are taken again by the next run, and a clock answered meanwhile has no row left. Due rows
    are claimed with SKIP LOCKED, so workers on PostgreSQL split the work; SQLite's IMMEDIATE
    transactions take turns."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = overdue_claim(now=now, limit=OVERDUE_BATCH)
        turned = [m for m in (overdue_apply(due, now=now) for due in claimed) if m is not None]
        # Last, after every row lock of the batch: the live-event lock is global and a send
        # takes it after its conversation's row, so taking it earlier could deadlock.
        for message in turned:
            live_event_record(
                client_id=message.client_id,
                type="message.reply_overdue",
                data={
                    "id": str(message.id),
                    "direction": message.direction,
                    "reply_state": message.reply_state,
                    "reply_due_at": iso_utc(message.reply_due_at),
                    # Staff streams only (the portal's never carries this type): the sender's
                    # page tells them their message went unanswered.
                    "sender_id": str(message.sender_id) if message.sender_id else None,
                    "client_name": message.client.full_name,
                },
            )
    if len(claimed) == OVERDUE_BATCH:
        return now
    return FollowUpDue.objects.order_by("due_at").values_list("due_at", flat=True).first()


def overdue_claim(*, now: datetime, limit: int) -> list[FollowUpDue]:
    """Lock up to `limit` due rows that no other transaction holds; call inside the
    transaction that applies them."""
    return list(
        FollowUpDue.objects.select_for_update(skip_locked=True)
        .filter(due_at__lte=now)
        .order_by("due_at")[:limit]
    )


def overdue_apply(due: FollowUpDue, *, now: datetime) -> Message | None:
    """Turn one claimed clock overdue (inside the claiming transaction); returns the message, or
    None when it was answered first."""
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("client", "sender")
        .get(pk=due.message_id)
    )
    due.delete()
    if message.reply_state != ReplyState.AWAITING:
        return None  # answered (or turned overdue) by a transaction that committed first
    message.reply_state = ReplyState.OVERDUE
    message.save(update_fields=["reply_state"])
    ours = message.direction == Direction.OUT
    late = now - (message.reply_due_at or now)
    activity_record(
        client=message.client,
        type=ActivityType.REPLY_OVERDUE if ours else ActivityType.RESPONSE_OVERDUE,
        actor=None,
        created_at=now,
        subject_id=message.id,
        data={
            "message_id": str(message.id),
            "reply_due_at": message.reply_due_at.isoformat() if message.reply_due_at else None,
            "late_seconds": max(0, int(late / timedelta(seconds=1))),
        },
    )
    if ours:  # the integrated system hears that a client did not answer in time
        message_event_webhook_create(message, type="message.reply_overdue", at=now)
    conversation = Conversation.objects.select_for_update().filter(pk=message.client_id).first()
    if conversation is not None:
        if ours:
            conversation.reply_overdue = True
        else:
            conversation.response_overdue = True
        conversation.overdue_since = _overdue_since(conversation)
        conversation.save()
    return message
