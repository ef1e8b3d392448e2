"""A real SMTP server on loopback (aiosmtpd) that Clientdesk's e-mail channel sends to."""

import contextlib
import email
import email.message
import email.policy
from collections.abc import Iterator
from typing import Any

from aiosmtpd.controller import Controller

from tests.servers import free_port


class Inbox:
    """What the server received; `fail_next` answers that many messages with a 451 first."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.fail_next = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next:
            self.fail_next -= 1
            return "451 4.3.0 try again later"
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


@contextlib.contextmanager
def smtp_inbox(settings: Any, **more: Any) -> Iterator[Inbox]:
    """The server running, Clientdesk's SMTP settings pointing at it (business "Acme Wealth",
    retries at once), and any `more` settings, until the block ends."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.BUSINESS_NAME = "Acme Wealth"
    settings.DELIVERY_RETRY_SCALE = 0.0
    for name, value in more.items():
        setattr(settings, name, value)
    try:
        yield handler
    finally:
        controller.stop()
