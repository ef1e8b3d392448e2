"""Issue an API token for a staff user and print it as the last line."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clientdesk.accounts.models import User
from clientdesk.accounts.services import api_token_create
from clientdesk.core.textcheck import text_argument


class Command(BaseCommand):
    help = "Print a new API token for USERNAME (shown once; only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", type=text_argument)
        parser.add_argument(
            "--name", type=text_argument, default="", help="A label to tell this token apart."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No staff user named {username!r}.")
        if not user.is_active:
            raise CommandError(
                f"User {username!r} is inactive; activate it before issuing a token."
            )
        _, token = api_token_create(user=user, name=options["name"])
        self.stderr.write(f"API token for {username} (store it now; it cannot be shown again):")
        self.stdout.write(token)
