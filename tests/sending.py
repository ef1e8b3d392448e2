"""Sending as the app does, for tests that need a message to exist."""

import uuid
from typing import Any

from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.services.idempotency import SendResult
from clientdesk.messaging.services.sending import message_send


def send_text(sender: Any, client: Any, body: str = "Hello {{firstName}}") -> SendResult:
    """`body` to `client` from `sender` through `message_send`, under a fresh idempotency key."""
    return message_send(
        sender=sender,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
