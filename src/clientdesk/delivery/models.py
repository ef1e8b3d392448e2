"""Deliveries are rows: one per message and channel, one attempt row per try."""

import base64
import secrets
import uuid

from django.conf import settings
from django.db import models

from clientdesk.clients.models import Client
from clientdesk.delivery.permissions import DeliveryPermission


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex


class Channel(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    EMAIL = "email", "Email"
    PUSH = "push", "Web Push"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class OutgoingEndpoint(models.Model):
    """The business's "outgoing message" endpoint. One per installation (pk=1)."""

    url = models.URLField(max_length=2000)
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, default=new_signing_secret)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="When the current run of failed attempts began."
    )
    email_enabled = models.BooleanField(
        default=False, help_text="Also email each message to clients who have an address."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        permissions = DeliveryPermission.model_meta()

    def __str__(self) -> str:
        return self.url


class PushSubscription(models.Model):
    """One browser or phone of a client that receives Web Push (RFC 8030): the push service's
    endpoint and the keys its pushes are encrypted for (RFC 8291). A client has any number."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=2000, unique=True)
    p256dh = models.CharField(max_length=100, help_text="The device's P-256 key, base64url.")
    auth = models.CharField(max_length=40, help_text="The 16-byte authentication secret.")
    expiration_time = models.DateTimeField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # Receipts: the service worker confirms each push it shows. A push service may accept pushes
    # for a device that is long gone (Apple answers 201 for them), so pushes delivered after the
    # last confirmed one are counted; PUSH_DEAD_AFTER of them make it "probably dead".
    last_receipt_at = models.DateTimeField(null=True, blank=True)
    confirmed_through = models.DateTimeField(
        null=True, blank=True, help_text="When the newest push the device confirmed was queued."
    )
    unconfirmed_pushes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["client", "created_at"]
        indexes = [models.Index(fields=["client", "created_at"], name="push_client_idx")]

    def __str__(self) -> str:
        return f"push subscription {self.id} of {self.client_id}"


class Delivery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    client = models.ForeignKey(
        Client,
        on_delete=models.PROTECT,
        related_name="deliveries",
        null=True,
        blank=True,
        help_text="The client it is about; none for the ledger's audit.checkpoint.",
    )
    subject_id = models.UUIDField(help_text="What is carried, e.g. the message's id.")
    # No constraint: a device may be forgotten (unsubscribed, 410) while a message to its client
    # is being written, and the send must not fail for it; a push row keeps the id of a device
    # that is gone, as history.
    push_subscription = models.ForeignKey(
        PushSubscription,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="deliveries",
        help_text="The device a push goes to (push channel only).",
    )
    payload = models.JSONField()
    webhook_id = models.CharField(
        max_length=40,
        default=new_webhook_id,
        help_text="Stable across attempts; receivers dedupe on it.",
    )
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempt_count = models.PositiveIntegerField(default=0)
    # Position in the retry schedule; "Retry now" on a failed delivery starts it again.
    schedule_step = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    leased_by = models.CharField(max_length=100, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # A message's deliveries are queued at one instant, in one statement: the channel
        # orders them as the lists of messages do.
        ordering = ["-created_at", "channel"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            models.Index(fields=["subject_id"], name="delivery_subject_idx"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.channel} {self.subject_id} {self.status}"

    @property
    def event_type(self) -> str:
        """What it carries: a webhook's envelope names it (`message.sent`, `message.read`,
        `audit.checkpoint`, ...); an email is always a message to the client."""
        if self.channel in (Channel.EMAIL, Channel.PUSH):
            return "message.sent"
        return str(self.payload.get("type", "")) if isinstance(self.payload, dict) else ""


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=1000, blank=True)
    worker = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
