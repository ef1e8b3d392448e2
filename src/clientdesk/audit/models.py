"""Append-only records: the client's timeline (ActivityEvent) and the ledger (AuditRecord)."""

import uuid

from django.conf import settings
from django.db import models

from clientdesk.clients.models import Client


class ActorType(models.TextChoices):
    STAFF = "staff", "Staff"
    CLIENT = "client", "Client"
    SYSTEM = "system", "System"


class ActivityType(models.TextChoices):
    MESSAGE_SENT = "message.sent", "Message sent"
    MESSAGE_DELIVERED = "message.delivered", "Message delivered"
    DELIVERY_FAILED = "message.delivery_failed", "Delivery failed"


class ActivityEvent(models.Model):
    """One entry of a client's timeline. Never updated or deleted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="activity")
    type = models.CharField(max_length=40, choices=ActivityType.choices)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The actor's name as it was at the time, so renaming a user never rewrites history.
    actor_label = models.CharField(max_length=300)
    subject_id = models.UUIDField(null=True, blank=True, help_text="e.g. the message's id")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["client", "-created_at", "-id"], name="activity_client_time_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} by {self.actor_label}"


class AuditRecord(models.Model):
    """One link of the compliance ledger's hash chain.

    `hash` covers the canonical JSON of this record's fields and `prev_hash`, so an edit,
    deletion, insertion or reordering breaks the chain at that record.
    """

    sequence = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=300)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_type}:{self.object_id}"
