"""Test helpers for follow-up: a client's message written by the one writer of messages, as a
reply from the portal is (without the portal's key and rate limit)."""

from clientdesk.clients.models import Client
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Direction, Message
from clientdesk.messaging.services.writing import MessageWrite, messages_write


def client_writes(client: Client, body: str = "Here you are") -> Message:
    (written,) = messages_write(
        writes=[MessageWrite(client=client, direction=Direction.IN, body=body, meta=RequestMeta())]
    )
    assert written.message is not None
    return written.message
