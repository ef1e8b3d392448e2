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
    REPLY_OVERDUE = "message.reply_overdue", "Reply overdue"
    RESPONSE_OVERDUE = "message.response_overdue", "Response overdue"
    MESSAGE_READ = "message.read", "Read by the client"
    REPLY_RECEIVED = "message.received", "Reply from the client"
    CONSENT_CHANGED = "client.consent_changed", "Outreach consent changed"
    PUSH_SUBSCRIPTION_EXPIRED = "push.subscription_expired", "Push subscription expired"


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


class AuditEntry(models.Model):
    """A ledger record written in the audited transaction, waiting for the sequencer.

    Sends only insert here, so they never wait on one another for the chain's end; the
    sequencer moves entries into `AuditRecord` in batches and deletes them in the same
    transaction, so an entry is sequenced exactly once or not yet."""

    id = models.BigAutoField(primary_key=True)
    entry_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=300)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"(unsequenced) {self.action} {self.object_type}:{self.object_id}"


class AuditRecord(models.Model):
    """One link of the compliance ledger's hash chain and one leaf of its Merkle tree.

    `hash` covers the canonical JSON of this record's fields and `prev_hash`, so an edit,
    deletion, insertion or reordering breaks the chain at that record; the signed checkpoints
    over the tree of these hashes also catch the removal of the last records or of all of them.
    Database triggers refuse UPDATE and DELETE (`audit/append_only.py`).
    """

    sequence = models.BigIntegerField(unique=True)
    # The AuditEntry this record was sequenced from: unique, so it cannot be sequenced twice.
    entry_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=300)
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_type}:{self.object_id}"


class AuditTreeNode(models.Model):
    """The hash of one perfect subtree of the ledger's Merkle tree (level 0: a leaf hash), kept
    by the sequencer so roots and proofs read O(log n) rows instead of every record."""

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="audit_tree_node_unique")
        ]

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class AuditCheckpoint(models.Model):
    """A signed note committing to the ledger's first `tree_size` records (C2SP signed note)."""

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.BinaryField(max_length=32)
    note = models.TextField(help_text="The signed note exactly as published.")
    key_name = models.CharField(max_length=200)
    vkey = models.CharField(max_length=300, help_text="The verifier key that checks the note.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-tree_size"]

    def __str__(self) -> str:
        return f"checkpoint at {self.tree_size}"
