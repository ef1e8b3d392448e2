"""Where apps after messaging join the transaction that writes messages: the follow-up clocks
start and stop with the messages that move them, in the same commit, without messaging importing
those apps. Apps register from `AppConfig.ready()`; the one writer of messages
(`messaging/services/writing.py`) calls `messages_written` inside its transaction.

A registered function gets every message of a write at once, in the order written (one or
thousands), and owes the writer set-based statements: a few per write, not a few per message."""

from collections.abc import Sequence

from clientdesk.core.hooks import TransactionHook
from clientdesk.messaging.models import Message

messages_written: TransactionHook[Sequence[Message]] = TransactionHook("messaging.messages_written")
