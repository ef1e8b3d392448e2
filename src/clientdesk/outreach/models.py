"""Broadcasts, their recipients (fixed when the broadcast is created), and the outreach
settings (one row)."""

import uuid

from django.conf import settings
from django.db import models

from clientdesk.clients.models import Client
from clientdesk.messaging.models import Category, Message, MessageTemplate
from clientdesk.outreach.permissions import OutreachPermission


class BroadcastStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class RecipientStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


class SkipReason(models.TextChoices):
    INACTIVE = "inactive", "The client is deactivated"
    OPTED_OUT = "opted_out", "The client opted out of outreach"
    MISSING_VARIABLES = "missing_variables", "The client's data lacks a variable of the text"
    FREQUENCY_CAP = "frequency_cap", "The client had the most outreach a week allows"


class Broadcast(models.Model):
    """One message to many clients: the audience as asked, the text (typed or a template's
    version), and the counts of its recipients, kept by the batches that write their messages
    (`pending` is the rest)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=BroadcastStatus.choices)
    category = models.CharField(max_length=10, choices=Category.choices)
    audience = models.JSONField(
        help_text="The audience as asked: search, language, attributes, ids."
    )
    body = models.TextField(blank=True, help_text="The text as typed, variables unrendered.")
    template = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    template_version = models.PositiveIntegerField(null=True, blank=True)
    expects_reply = models.BooleanField(default=False)
    send_at = models.DateTimeField(null=True, blank=True, help_text="When to send (an instant).")
    send_at_local = models.CharField(
        max_length=19, blank=True, help_text="When to send, in each client's own zone (naive ISO)."
    )
    recipients = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    recipients_sha256 = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request it answered.")
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at", "-id"], name="broadcast_time_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"], name="broadcast_key_per_user"
            )
        ]

    def __str__(self) -> str:
        return f"Broadcast of {self.created_at:%Y-%m-%d %H:%M} to {self.recipients} clients"

    @property
    def pending(self) -> int:
        return self.recipients - self.sent - self.skipped - self.cancelled


class BroadcastRecipient(models.Model):
    """One client of a broadcast: pending until a batch writes its message (sent) or skips it,
    or a cancel reaches it first. `due_at` is when its message is written (the broadcast's
    time, or its local time in the client's zone); `deliver_at` when its notifications go
    (after quiet hours)."""

    id = models.BigAutoField(primary_key=True)
    broadcast = models.ForeignKey(Broadcast, on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.PENDING
    )
    reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True)
    due_at = models.DateTimeField()
    deliver_at = models.DateTimeField(null=True, blank=True)
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "client"], name="broadcast_recipient_once")
        ]
        indexes = [
            # The batches' claim: pending recipients in due order.
            models.Index(
                fields=["due_at", "id"],
                condition=models.Q(status="pending"),
                name="broadcast_recipient_due_idx",
            ),
            models.Index(fields=["broadcast", "status", "id"], name="broadcast_recipient_list_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} in {self.broadcast_id}: {self.status}"


class OutreachSettings(models.Model):
    """Quiet hours, the default zone of clients without one, and the weekly cap. One row
    (pk=1); administrators change it."""

    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    default_timezone = models.CharField(max_length=64, default="UTC")
    max_outreach_per_week = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "outreach settings"
        permissions = OutreachPermission.model_meta()

    def __str__(self) -> str:
        return "Outreach settings"
