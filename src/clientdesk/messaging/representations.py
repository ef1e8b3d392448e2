"""The JSON shapes of messages and templates, shared by the API and the idempotency replay."""

from datetime import datetime
from typing import Any

from clientdesk.messaging.models import Message, MessageTemplate, MessageTemplateVersion


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def message_representation(message: Message) -> dict[str, Any]:
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
            }
            if message.template_id
            else None
        ),
        "created_at": _time(message.created_at),
        "read_at": _time(message.read_at),
        "deliveries": [],
    }


def template_representation(
    template: MessageTemplate, version: MessageTemplateVersion
) -> dict[str, Any]:
    return {
        "id": str(template.id),
        "name": template.name,
        "is_active": template.is_active,
        "version": version.version,
        "default_language": version.default_language,
        "body": version.variants[version.default_language],
        "variants": version.variants,
        "created_at": _time(template.created_at),
        "updated_at": _time(version.created_at),
    }
