"""Print a one-time sign-in link to the reference cabinet for one client (valid 15 minutes)."""

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from clientdesk.clients.models import Client
from clientdesk.core.textcheck import text_argument
from clientdesk.portal.services import portal_link_create


class Command(BaseCommand):
    help = "Print a one-time sign-in link to the client's online cabinet (last line)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "client", type=text_argument, help="the client's id (UUID) or external id"
        )
        parser.add_argument(
            "--base-url",
            default=os.environ.get("CLIENTDESK_BASE_URL", "http://127.0.0.1:8000"),
            help="where Clientdesk is served (default: $CLIENTDESK_BASE_URL or 127.0.0.1:8000)",
        )

    def handle(self, *args: Any, client: str, base_url: str, **options: Any) -> None:
        found = Client.objects.filter(external_id=client).first()
        if found is None:
            try:
                found = Client.objects.filter(pk=client).first()
            except Exception:  # not a UUID either
                found = None
        if found is None:
            raise CommandError(f"No client with id or external id {client!r}.")
        code = portal_link_create(client=found)
        self.stdout.write(f"Sign-in link for {found.full_name} (one use, 15 minutes):")
        # The code rides in the fragment: browsers never send it to a server or a log.
        self.stdout.write(f"{base_url.rstrip('/')}/portal/#code={code}")
