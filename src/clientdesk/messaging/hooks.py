"""Where apps after messaging join the transaction that writes messages: the follow-up clocks
start and stop with the messages that move them, in the same commit, without messaging importing
those apps. Apps register from `AppConfig.ready()`; the one writer of messages
(`messaging/services/writing.py`) calls `messages_written` inside its transaction."""

from collections.abc import Callable, Sequence

from django.db import transaction

from clientdesk.messaging.models import Message

MessagesHook = Callable[[Sequence[Message]], None]
_hooks: dict[str, MessagesHook] = {}


def messages_written_hook_register(*, name: str, hook: MessagesHook) -> None:
    """Registering a name again replaces its hook (ready() may run twice in tests).

    A hook gets every message of a write at once, in the order written (one or thousands), and
    owes the writer set-based statements: a few per write, not a few per message."""
    _hooks[name] = hook


def messages_written(messages: Sequence[Message]) -> None:
    """Run every registered hook for messages just written in the current transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("messages_written must run inside the transaction that wrote them")
    for hook in _hooks.values():
        hook(messages)
