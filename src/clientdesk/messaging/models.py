"""Messages between staff and clients, message templates, and the idempotency keys that keep
sends and replies single."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from clientdesk.clients.models import Client
from clientdesk.messaging.permissions import MessagingPermission


class Direction(models.TextChoices):
    OUT = "out", "To client"
    IN = "in", "From client"


class ReplyState(models.TextChoices):
    """Whether a message got its answer: the client's reply to ours, or our response to theirs."""

    NONE = "none", "No reply expected"
    AWAITING = "awaiting", "Awaiting reply"
    OVERDUE = "overdue", "Overdue"
    ANSWERED = "answered", "Answered"


class Category(models.TextChoices):
    """What a message is for. Outreach (announcements, offers) honours the client's opt-out;
    service messages (about the client's own account, compliance) always go."""

    SERVICE = "service", "Service"
    OUTREACH = "outreach", "Outreach"


class CabinetStatus(models.TextChoices):
    """Where a message stands in the client's online cabinet, which holds every message: the
    client reads it there after signing in, notified or not by a webhook or email."""

    AVAILABLE = "available", "In the cabinet"
    READ = "read", "Read in the cabinet"
    CLIENT_DEACTIVATED = "client_deactivated", "Not visible: the client is deactivated"
    FROM_CLIENT = "from_client", "Written in the cabinet"


class MessageTemplate(models.Model):
    """A reusable message. Its text lives in immutable versions, so editing never changes what
    was already sent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120, unique=True)
    is_active = models.BooleanField(default=True)
    expects_reply = models.BooleanField(
        default=False,
        help_text="Messages from this template expect a reply unless the sender says otherwise "
        "(e.g. a KYC request).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Names are compared without case; the index settles concurrent renames.
            models.UniqueConstraint(Lower("name"), name="template_name_unique_ci")
        ]

    def __str__(self) -> str:
        return self.name


class MessageTemplateVersion(models.Model):
    """One version of a template: a body per language and which language is the fallback."""

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    default_language = models.CharField(max_length=8)
    variants = models.JSONField(help_text="Language code → body.")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # The documents every message from this version asks for (labels; a KYC template asks for
    # the same ones each time).
    document_requests = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["template", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="template_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.version}"

    def variant_for(self, language: str) -> tuple[str, str]:
        """The (language, body) to send to a client speaking `language`: the exact variant,
        then the base language ("pt" for "pt-br"), then the default."""
        for candidate in (language, language.split("-")[0]):
            if candidate in self.variants:
                return candidate, self.variants[candidate]
        return self.default_language, self.variants[self.default_language]


class Message(models.Model):
    """A private message. Never edited after it is written: it is what the client was sent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction.choices, default=Direction.OUT)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sent_messages",
    )
    body = models.TextField(help_text="The final text the client receives.")
    source = models.TextField(help_text="The text as the sender typed it, variables unrendered.")
    variables = models.JSONField(default=dict, blank=True, help_text="Variable values used.")
    template = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    template_version = models.PositiveIntegerField(null=True, blank=True)
    template_language = models.CharField(max_length=8, blank=True)
    template_edited = models.BooleanField(
        default=False,
        help_text="The sender changed the template's text for this client before sending.",
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    in_reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replies"
    )
    # Follow-up clocks: ours expects the client's reply; theirs expects our response.
    expects_reply = models.BooleanField(default=False)
    reply_due_at = models.DateTimeField(null=True, blank=True)
    reply_state = models.CharField(
        max_length=10, choices=ReplyState.choices, default=ReplyState.NONE
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    category = models.CharField(max_length=10, choices=Category.choices, default=Category.SERVICE)
    # The broadcast this message is one recipient's copy of (`outreach.Broadcast`; an id, not a
    # key: messaging sits before the app that owns broadcasts).
    broadcast_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["client", "-created_at", "-id"], name="message_client_time_idx"),
            models.Index(fields=["-created_at", "-id"], name="message_time_idx"),
            # The API's awaiting_reply / needs_response lists: one range per state and direction.
            models.Index(
                fields=["reply_state", "direction", "-created_at", "-id"],
                name="message_reply_state_idx",
            ),
        ]
        constraints = [
            # Exactly one message per recipient of a broadcast, whatever crashes or retries.
            models.UniqueConstraint(
                fields=["broadcast_id", "client"],
                condition=models.Q(broadcast_id__isnull=False),
                name="message_one_per_broadcast_recipient",
            )
        ]
        permissions = MessagingPermission.model_meta()

    def __str__(self) -> str:
        return f"Message to {self.client} at {self.created_at:%Y-%m-%d %H:%M}"

    def cabinet_status(self, client: Client) -> CabinetStatus:
        """This message in the cabinet of `client` (its own client, passed in because lists
        already hold it). A deactivated client cannot sign in, so sees nothing there."""
        if self.direction == Direction.IN:
            return CabinetStatus.FROM_CLIENT
        if not client.is_active:
            return CabinetStatus.CLIENT_DEACTIVATED
        return CabinetStatus.READ if self.read_at else CabinetStatus.AVAILABLE


class IdempotencyKey(models.Model):
    """The first answer to a request that wrote a message, kept so that a retry with the same
    key replays it. Keys are per author: a staff user's sends, a client's replies."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+"
    )
    client = models.ForeignKey(Client, null=True, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request it answered.")
    message = models.ForeignKey(Message, null=True, on_delete=models.CASCADE, related_name="+")
    response_status = models.PositiveSmallIntegerField(default=201)
    response_body = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            # NULLs differ in a unique index, so each of these holds for its own author only.
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user"),
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_per_client"),
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, client__isnull=True)
                | models.Q(user__isnull=True, client__isnull=False),
                name="idempotency_key_one_author",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class MessageAttachment(models.Model):
    """A file carried by a message, in the order the author gave. The file is the recipient's
    own copy (`files.file_bind`), so a client reaches only files on its own messages."""

    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="attachments")
    file = models.ForeignKey("files.StoredFile", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["message", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "position"], name="message_attachment_position"
            )
        ]

    def __str__(self) -> str:
        return f"Attachment {self.position} of {self.message_id}"


class DocumentStatus(models.TextChoices):
    OPEN = "open", "Waiting for the client"
    RECEIVED = "received", "Received"


class DocumentRequest(models.Model):
    """A document a staff message asks the client for; the client's reply that `fulfils` it
    with an upload makes it received. The message's reply clock is answered only once every
    request of it is received."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="document_requests")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=DocumentStatus.choices, default=DocumentStatus.OPEN
    )
    file = models.ForeignKey(
        "files.StoredFile", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    received_at = models.DateTimeField(null=True, blank=True)
    received_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.PROTECT, related_name="fulfilled_requests"
    )

    class Meta:
        ordering = ["message", "position"]
        indexes = [
            # `?documents=open` and the clock's check: the open requests of messages.
            models.Index(fields=["status", "message"], name="document_request_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "position"], name="document_request_position"
            ),
            models.CheckConstraint(
                condition=models.Q(status="open", file__isnull=True)
                | models.Q(status="received", file__isnull=False, received_at__isnull=False),
                name="document_request_received_has_file",
            ),
        ]

    def __str__(self) -> str:
        return self.label


class BroadcastFile(models.Model):
    """A file a broadcast carries to each recipient (`outreach.Broadcast`, by id: messaging sits
    before the app that owns broadcasts). Each recipient's message gets its own bound copy."""

    broadcast_id = models.UUIDField()
    file = models.ForeignKey("files.StoredFile", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["broadcast_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast_id", "position"], name="broadcast_file_position"
            )
        ]

    def __str__(self) -> str:
        return f"File {self.position} of broadcast {self.broadcast_id}"
