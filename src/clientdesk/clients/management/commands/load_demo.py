"""Load demo users (one per role) and demo clients; safe to run again."""

import json
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser

from clientdesk.accounts.models import User
from clientdesk.accounts.roles import Role
from clientdesk.clients.demo import demo_clients
from clientdesk.clients.models import Client
from clientdesk.clients.services import clients_bulk_create
from clientdesk.core.bounded import whole_number_argument

# The benchmarks load a million; more is a typo.
DEMO_CLIENTS_MAX = 10_000_000
DEMO_USERS = {
    "admin": (Role.ADMINISTRATOR, "Ada", "Admin"),
    "manager": (Role.MANAGER, "Maya", "Manager"),
    "agent": (Role.AGENT, "Alex", "Agent"),
    "viewer": (Role.VIEWER, "Vic", "Viewer"),
}


class Command(BaseCommand):
    help = "Create one demo user per role and demo clients (idempotent); print the logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--clients",
            type=whole_number_argument(minimum=0, maximum=DEMO_CLIENTS_MAX),
            default=300,
            help=f"How many demo clients (0-{DEMO_CLIENTS_MAX:,}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logins = self._users()
        created = self._clients(options["clients"])
        self.stdout.write(f"Demo clients: {Client.objects.count()} ({created} new).")
        self.stdout.write("Demo logins (role: username / password):")
        for username, (role, *_rest) in DEMO_USERS.items():
            self.stdout.write(f"  {role:<14} {username} / {logins[username]}")

    def _users(self) -> dict[str, str]:
        path = settings.VAR_DIR / "demo-logins.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        for username, (role, first, last) in DEMO_USERS.items():
            password = stored.get(username) or f"{username}-{secrets.token_urlsafe(6)}"
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last}
            )
            if created or not user.check_password(password):
                user.set_password(password)
            user.is_staff = role == Role.ADMINISTRATOR
            user.is_superuser = role == Role.ADMINISTRATOR
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            stored[username] = password
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
        return stored

    def _clients(self, count: int) -> int:
        existing = set(Client.objects.values_list("external_id", flat=True))
        rows = (row for row in demo_clients(count) if row["external_id"] not in existing)
        return clients_bulk_create(rows=rows)
