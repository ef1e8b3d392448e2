"""Writes for follow-up: the policy, starting and answering clocks with each message, and turning
clocks overdue when their due time passes."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityType
from clientdesk.audit.services import activity_record, audit_append
from clientdesk.clients.models import Client
from clientdesk.core import notify
from clientdesk.core.errors import PermissionDenied
from clientdesk.core.live.recording import live_event_record
from clientdesk.core.time import iso_utc
from clientdesk.followup.models import Conversation, FollowUpDue, FollowUpPolicy
from clientdesk.followup.permissions import FollowupPermission
from clientdesk.followup.policy import PolicyUnmet, policy_check, reply_due, response_due
from clientdesk.followup.selectors import policy_get
from clientdesk.messaging.models import Direction, Message, ReplyState
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


def _answer(*, client_id: Any, direction: str, at: datetime) -> None:
    """Close every open clock of `client_id`'s messages in `direction`. Due rows go first: the
    overdue worker locks a due row before its message, so the same order here cannot deadlock."""
    open_messages = Message.objects.filter(
        client_id=client_id, direction=direction, reply_state__in=OPEN_STATES
    )
    FollowUpDue.objects.filter(message__in=open_messages.values("id")).delete()
    open_messages.update(reply_state=ReplyState.ANSWERED, answered_at=at)


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


def followup_message_written(message: Message) -> None:
    """Move the clocks for a message just written, in its transaction: ours answers the client's
    open messages and may start a reply clock; the client's answers our waiting messages and
    opens a response clock unless one is already running."""
    now = message.created_at
    # The client row is the conversation's mutex: two messages of one client at once must not
    # both open a response clock. The overdue worker never locks it, so no lock cycle.
    Client.objects.select_for_update().filter(pk=message.client_id).values("pk").first()
    if message.direction == Direction.OUT:
        _answer(client_id=message.client_id, direction=Direction.IN, at=now)
        if message.expects_reply:
            due = message.reply_due_at or _policy_due(reply_due, message)
            if due is not None:
                _start(message, due)
    else:
        _answer(client_id=message.client_id, direction=Direction.OUT, at=now)
        already_open = Message.objects.filter(
            client_id=message.client_id, direction=Direction.IN, reply_state__in=OPEN_STATES
        ).exists()
        if not already_open:
            due = _policy_due(response_due, message)
            if due is not None:
                _start(message, due)
    _conversation_refresh(message)


def _policy_due(
    rule: Callable[[FollowUpPolicy, datetime], datetime], message: Message
) -> datetime | None:
    """The policy's due time for `message`, or None when the stored policy cannot give one: the
    message matters more than its clock, so it is kept without one. Administrators see why on
    the follow-up pages (policy_problem)."""
    try:
        return rule(policy_get(), message.created_at)
    except PolicyUnmet as problem:
        log.warning(
            "follow-up clock skipped for message %s (%s): %s",
            message.pk,
            message.direction,
            problem,
        )
        return None


def _start(message: Message, due: datetime) -> None:
    message.reply_due_at = due
    message.reply_state = ReplyState.AWAITING
    message.save(update_fields=["reply_due_at", "reply_state"])
    FollowUpDue.objects.create(message=message, due_at=due)
    notify.work_due()  # a worker sleeping until a later due time looks again


def _conversation_refresh(message: Message) -> None:
    """Bring the client's conversation row up to date after `message`."""
    conversation = Conversation.objects.select_for_update().filter(pk=message.client_id).first()
    if conversation is None:
        conversation = Conversation(client_id=message.client_id)
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
    conversation.save()


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
