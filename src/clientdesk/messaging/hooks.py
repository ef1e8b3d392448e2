"""Where apps after messaging join the transaction that writes messages: the follow-up clocks
start and stop with the messages that move them, in the same commit, without messaging importing
those apps. Apps register from `AppConfig.ready()`; the one writer of messages
(`messaging/services/writing.py`) calls `messages_written` inside its transaction.

A registered function gets every message of a write at once, in the order written (one or
thousands), and owes the writer set-based statements: a few per write, not a few per message."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clientdesk.core.hooks import TransactionHook
from clientdesk.messaging.models import Message

messages_written: TransactionHook[Sequence[Message]] = TransactionHook("messaging.messages_written")


@dataclass
class MessagesAnnounced:
    """The messages of one write, and the live events later apps add about them as
    `(subject id, type, data)`: the writer records these with its own `message.created`, under
    the one live-event order lock that must be the last thing its transaction takes."""

    messages: Sequence[Message]
    live_events: list[tuple[uuid.UUID, str, dict[str, Any]]] = field(default_factory=list)


# Called just before the writer records its live events: a function may still write rows (who
# hears of a reply) and add live events; it must not take the live-event lock itself.
messages_announced: TransactionHook[MessagesAnnounced] = TransactionHook(
    "messaging.messages_announced"
)
