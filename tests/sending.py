"""Sending as the app does, for tests that need messages to exist."""

import uuid
from collections.abc import Iterable
from typing import Any

from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Direction, Message
from clientdesk.messaging.services.idempotency import SendResult
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.writing import MessageWrite, messages_write


def send_text(sender: Any, client: Any, body: str = "Hello {{firstName}}") -> SendResult:
    """`body` to `client` from `sender` through `message_send`, under a fresh idempotency key."""
    return message_send(
        sender=sender,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )


def write_texts(sender: Any, client: Any, bodies: Iterable[str]) -> list[Message]:
    """`bodies`, as written (no variables), from `sender` to `client` in one call of the one
    writer of messages, as a batch is written: every record of each message, at one instant."""
    written = messages_write(
        writes=[
            MessageWrite(
                client=client, direction=Direction.OUT, sender=sender, body=b, meta=RequestMeta()
            )
            for b in bodies
        ]
    )
    return [w.message for w in written if w.message is not None]
