"""Test helpers for follow-up: a client's message written the way every inbound path writes it
(the Message row and the follow-up hook in one transaction)."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from clientdesk.clients.models import Client
from clientdesk.messaging.hooks import message_written
from clientdesk.messaging.models import Direction, Message


def client_writes(
    client: Client, body: str = "Here you are", *, at: datetime | None = None
) -> Message:
    with transaction.atomic():
        message = Message.objects.create(
            client=client,
            direction=Direction.IN,
            body=body,
            source=body,
            created_at=at or timezone.now(),
        )
        message_written(message)
    return message
