"""Delete live events older than LIVE_EVENT_RETENTION_HOURS (run it daily, e.g. from cron)."""

from typing import Any

from django.core.management.base import BaseCommand

from clientdesk.core.live.recording import live_events_prune


class Command(BaseCommand):
    help = "Delete live events older than CLIENTDESK_LIVE_EVENT_RETENTION_HOURS."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{live_events_prune()} live events deleted")
