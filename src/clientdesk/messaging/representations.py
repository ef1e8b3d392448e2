"""The JSON shapes of messages and templates, shared by the API and the idempotency replay."""

from typing import Any

from clientdesk.core.time import iso_utc
from clientdesk.delivery.models import Delivery, DeliveryAttempt
from clientdesk.files.models import StoredFile
from clientdesk.messaging.models import (
    DocumentRequest,
    Message,
    MessageTemplate,
    MessageTemplateVersion,
)
from clientdesk.messaging.selectors import MessageFiles, message_files


def attempt_representation(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": iso_utc(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "response_excerpt": attempt.response_excerpt,
        "error": attempt.error,
    }


def delivery_representation(
    delivery: Delivery, *, attempts: list[DeliveryAttempt] | None = None
) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "id": str(delivery.id),
        "channel": delivery.channel,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": iso_utc(delivery.next_attempt_at),
        "delivered_at": iso_utc(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "webhook_id": delivery.webhook_id,
    }
    if attempts is not None:
        shape["attempts"] = [attempt_representation(a) for a in attempts]
    return shape


def attachment_representation(file: StoredFile) -> dict[str, Any]:
    return {
        "id": str(file.id),
        "name": file.name,
        "size": file.size,
        "content_type": file.content_type,
        "sha256": file.sha256,
    }


def document_request_representation(request: DocumentRequest) -> dict[str, Any]:
    """A document request: `file` is the client's upload once received, else null."""
    return {
        "id": str(request.id),
        "label": request.label,
        "status": request.status,
        "file": attachment_representation(request.file) if request.file is not None else None,
    }


def files_representation(message: Message, files: MessageFiles | None) -> dict[str, Any]:
    """`attachments` and `document_requests` of a message; `files` as a listing read them for
    many messages at once, or None to read this message's."""
    if files is None:
        files = message_files(message)
    return {
        "attachments": [attachment_representation(f) for f in files.attachments],
        "document_requests": [document_request_representation(r) for r in files.document_requests],
    }


def message_representation(
    message: Message,
    *,
    deliveries: list[Delivery] | None = None,
    with_attempts: bool = False,
    files: MessageFiles | None = None,
) -> dict[str, Any]:
    sender = message.sender
    return {
        "id": str(message.id),
        "client_id": str(message.client_id),
        "direction": message.direction,
        "body": message.body,
        "source": message.source,
        "variables": message.variables,
        "sender": (
            {"id": str(sender.pk), "username": sender.username, "name": sender.display_name}
            if sender
            else None
        ),
        "template": (
            {
                "id": str(message.template_id),
                "version": message.template_version,
                "language": message.template_language,
                "edited": message.template_edited,
            }
            if message.template_id
            else None
        ),
        "created_at": iso_utc(message.created_at),
        "read_at": iso_utc(message.read_at),
        "in_reply_to": str(message.in_reply_to_id) if message.in_reply_to_id else None,
        "expects_reply": message.expects_reply,
        "reply_state": message.reply_state,
        "reply_due_at": iso_utc(message.reply_due_at),
        "answered_at": iso_utc(message.answered_at),
        "category": message.category,
        "broadcast_id": str(message.broadcast_id) if message.broadcast_id else None,
        **files_representation(message, files),
        "channels": message_channels(message, deliveries or []),
        "deliveries": [
            delivery_representation(d, attempts=list(d.attempts.all()) if with_attempts else None)
            for d in deliveries or []
        ],
    }


def message_channels(message: Message, deliveries: list[Delivery]) -> list[dict[str, Any]]:
    """Where the message went: the client's cabinet, which holds every message, then each
    delivery (webhook, email) with its status."""
    return [
        {"channel": "cabinet", "status": message.cabinet_status(message.client)},
        *({"channel": d.channel, "status": d.status, "delivery_id": str(d.id)} for d in deliveries),
    ]


def message_client_representation(
    message: Message, *, files: MessageFiles | None = None
) -> dict[str, Any]:
    """A message as the client sees it (portal API, portal events): no staff details."""
    sender = message.sender
    return {
        "id": str(message.id),
        "direction": message.direction,
        "body": message.body,
        "created_at": iso_utc(message.created_at),
        "sender": {"name": sender.display_name} if sender else None,
        "read_at": iso_utc(message.read_at),
        "in_reply_to": str(message.in_reply_to_id) if message.in_reply_to_id else None,
        **files_representation(message, files),
    }


def template_representation(
    template: MessageTemplate, version: MessageTemplateVersion
) -> dict[str, Any]:
    return {
        "id": str(template.id),
        "name": template.name,
        "is_active": template.is_active,
        "expects_reply": template.expects_reply,
        "version": version.version,
        "default_language": version.default_language,
        "body": version.variants[version.default_language],
        "variants": version.variants,
        "document_requests": [{"label": label} for label in version.document_requests],
        "created_at": iso_utc(template.created_at),
        "updated_at": iso_utc(version.created_at),
    }
