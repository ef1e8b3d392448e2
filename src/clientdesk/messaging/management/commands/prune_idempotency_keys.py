"""Delete stored idempotency answers older than their advertised lifetime."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from clientdesk.messaging.services.idempotency import idempotency_keys_prune


class Command(BaseCommand):
    help = "Delete idempotency keys older than CLIENTDESK_IDEMPOTENCY_TTL_HOURS (default 24)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = idempotency_keys_prune()
        self.stdout.write(
            f"Deleted {deleted} idempotency keys older than {settings.IDEMPOTENCY_KEY_TTL_HOURS} h."
        )
