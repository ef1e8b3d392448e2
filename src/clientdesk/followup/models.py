"""The follow-up policy, the open clocks' due-time rows, one summary row per conversation, and
the replies each member of staff has to hear of."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from clientdesk.clients.models import Client
from clientdesk.followup.permissions import FollowupPermission
from clientdesk.messaging.models import Direction, Message


def default_business_hours() -> dict[str, list[str] | None]:
    weekday = ["09:00", "17:00"]
    return {
        "mon": weekday,
        "tue": weekday,
        "wed": weekday,
        "thu": weekday,
        "fri": weekday,
        "sat": None,
        "sun": None,
    }


class FollowUpPolicy(models.Model):
    """How long clients have to reply and staff to respond, in business hours. One row (pk=1)."""

    reply_window_hours = models.FloatField(
        default=16.0, help_text="Business hours a client has to reply to a message that asks."
    )
    response_window_hours = models.FloatField(
        default=4.0, help_text="Business hours staff have to respond to a client's message."
    )
    timezone = models.CharField(max_length=64, default="UTC")
    business_hours = models.JSONField(default=default_business_hours)
    holidays = models.CharField(
        max_length=8, blank=True, help_text="Country code whose public holidays are closed."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "follow-up policy"
        permissions = FollowupPermission.model_meta()

    def __str__(self) -> str:
        return "Follow-up policy"


class FollowUpDue(models.Model):
    """An open clock's due time: the worker turns it overdue when it passes, unless the clock is
    answered first (which deletes the row). Only open clocks have a row, so the worker reads an
    index range of due rows and never scans messages."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="followup_due")
    due_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="followup_due_idx")]

    def __str__(self) -> str:
        return f"{self.message_id} due {self.due_at:%Y-%m-%d %H:%M}"


class Conversation(models.Model):
    """What the Messages page lists: the latest state of one client's conversation, updated in
    the transaction of every message and clock change, so each view is one index range."""

    client = models.OneToOneField(
        Client, primary_key=True, on_delete=models.CASCADE, related_name="conversation"
    )
    last_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    last_message_at = models.DateTimeField()
    last_direction = models.CharField(max_length=3, choices=Direction.choices)
    last_sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Client messages since our last message: what a member of staff has not answered yet.
    unanswered_in = models.PositiveIntegerField(default=0)
    # Earliest due time of our messages still waiting for the client's reply.
    reply_due_at = models.DateTimeField(null=True, blank=True)
    reply_overdue = models.BooleanField(default=False)
    # Due time of our response to the client's oldest unanswered message.
    response_due_at = models.DateTimeField(null=True, blank=True)
    response_overdue = models.BooleanField(default=False)
    # Earliest due time among the overdue clocks, for the Overdue view.
    overdue_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-last_message_at", "-client"], name="conversation_recent_idx"),
            models.Index(fields=["reply_due_at", "client"], name="conversation_reply_idx"),
            models.Index(fields=["response_due_at", "client"], name="conversation_response_idx"),
            models.Index(fields=["overdue_since", "client"], name="conversation_overdue_idx"),
        ]

    def __str__(self) -> str:
        return f"Conversation with {self.client_id}"


class ReplyNotification(models.Model):
    """A client's reply as the member of staff it answers hears of it: unread until `read_at`.
    Written with the reply (`followup/notifications.py`), one per reply at most; read when that
    user opens the conversation or marks it read."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "message"], name="reply_notification_once")
        ]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="reply_notification_list_idx"),
            # The badge on every page counts these; reads by conversation narrow them.
            models.Index(
                fields=["user", "client"],
                condition=Q(read_at__isnull=True),
                name="reply_notification_unread_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Reply {self.message_id} for {self.user_id}"
