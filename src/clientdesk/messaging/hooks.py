"""Where apps after messaging join the transaction that writes a message: the follow-up clocks
start and stop with the message that moves them, in the same commit, without messaging importing
those apps. Apps register from `AppConfig.ready()`; every path that writes a Message (a staff
send, a client's reply) calls `message_written` inside its transaction."""

from collections.abc import Callable

from django.db import transaction

from clientdesk.messaging.models import Message

MessageHook = Callable[[Message], None]
_hooks: dict[str, MessageHook] = {}


def message_written_hook_register(*, name: str, hook: MessageHook) -> None:
    """Registering a name again replaces its hook (ready() may run twice in tests)."""
    _hooks[name] = hook


def message_written(message: Message) -> None:
    """Run every registered hook for a message just written in the current transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("message_written must run inside the transaction that wrote it")
    for hook in _hooks.values():
        hook(message)
