"""The JSON shape of a message, shared by the API and the idempotency replay."""

from typing import Any

from clientdesk.messaging.models import Message


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
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
        "read_at": message.read_at.isoformat().replace("+00:00", "Z") if message.read_at else None,
        "deliveries": [],
    }
