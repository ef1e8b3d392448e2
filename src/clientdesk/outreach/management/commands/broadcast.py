"""`manage.py broadcast`: one message to many clients from the command line, through the same
services as the API (checks, dry run, idempotency, ledger); the workers send it."""

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from clientdesk.accounts.models import User
from clientdesk.core.errors import ApplicationError
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import MessageTemplate
from clientdesk.outreach.apis import broadcast_representation
from clientdesk.outreach.models import Broadcast, BroadcastStatus
from clientdesk.outreach.services import (
    MAX_IDS,
    broadcast_create,
    broadcast_preview,
    broadcast_request_parse,
)

# An external-ids file holds at most this many bytes (MAX_IDS ids of 64 characters).
MAX_FILE_BYTES = MAX_IDS * 66


def _external_ids(path: str) -> list[str]:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"{path} is larger than {MAX_FILE_BYTES:,} bytes.")
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror or error}.") from error
    except UnicodeDecodeError as error:
        raise CommandError(f"{path} is not UTF-8 text.") from error
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise CommandError(f"{path} holds no external id (one per line).")
    return ids


class Command(BaseCommand):
    help = (
        "Send one message to many clients: the audience by --search or --external-ids, the text "
        "by --body or --template. Checks and counts at once; the workers (manage.py "
        "run_worker) send it, and on a terminal a progress bar follows them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        audience = parser.add_mutually_exclusive_group(required=True)
        audience.add_argument("--search", help="Clients matching these words, as on /clients/.")
        audience.add_argument(
            "--external-ids", metavar="FILE", help="A file of external ids, one per line."
        )
        text = parser.add_mutually_exclusive_group(required=True)
        text.add_argument("--body", help="The text; variables such as {{ firstName }} allowed.")
        text.add_argument("--template", metavar="NAME", help="A message template, by name.")
        parser.add_argument("--category", required=True, choices=["service", "outreach"])
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--send-at", metavar="ISO", help="An instant, e.g. 2026-12-01T09:00Z.")
        when.add_argument(
            "--send-at-local",
            metavar="ISO",
            help="A local time read in each client's zone, e.g. 2026-12-01T09:00:00.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show counts, skips and previews; send nothing."
        )
        parser.add_argument("--as", dest="username", required=True, metavar="USERNAME")
        parser.add_argument(
            "--idempotency-key",
            help="Repeat a run safely: the same key and request give the same broadcast.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active staff user {options['username']!r}.")
        data: dict[str, Any] = {"category": options["category"]}
        if options["search"] is not None:
            data["audience"] = {"search": options["search"]}
        else:
            data["audience"] = {"external_ids": _external_ids(options["external_ids"])}
        if options["body"] is not None:
            data["body"] = options["body"]
        else:
            template = MessageTemplate.objects.filter(name__iexact=options["template"]).first()
            if template is None:
                raise CommandError(f"No message template named {options['template']!r}.")
            data["template_id"] = str(template.pk)
        for flag in ("send_at", "send_at_local"):
            if options[flag] is not None:
                data[flag] = options[flag]
        try:
            request = broadcast_request_parse(data)
            if options["dry_run"]:
                preview = broadcast_preview(actor=user, request=request)
                self.stdout.write(
                    json.dumps(
                        {
                            "recipients": preview.recipients,
                            "skipped": preview.skipped,
                            "preview": preview.preview,
                        },
                        indent=2,
                        ensure_ascii=False,
                    )
                )
                return
            broadcast, replayed = broadcast_create(
                actor=user,
                request=request,
                idempotency_key=options["idempotency_key"] or str(uuid.uuid4()),
                meta=RequestMeta(user_agent="manage.py broadcast"),
            )
        except ApplicationError as error:
            errors = error.extra.get("errors") or {}
            named = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
            raise CommandError(f"{error.detail}" + (f" ({named})" if named else "")) from error
        if replayed:
            self.stderr.write("This idempotency key was used before: the same broadcast.")
        self.stderr.write(
            f"Broadcast {broadcast.pk}: {broadcast.recipients:,} clients, "
            f"{broadcast.skipped:,} skipped; the workers send it."
        )
        if self.stdout.isatty() and sys.stderr.isatty() and broadcast.send_at is None:
            self._follow(broadcast)
            broadcast.refresh_from_db()
        self.stdout.write(json.dumps(broadcast_representation(broadcast), indent=2))

    def _follow(self, broadcast: Broadcast) -> None:
        """A progress bar of the workers' batches until the broadcast ends (Ctrl-C stops
        watching; the broadcast goes on)."""
        columns = (
            TextColumn("Sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        finished = (BroadcastStatus.COMPLETED, BroadcastStatus.CANCELLED)
        try:
            with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("Sending", total=broadcast.recipients)
                while True:
                    broadcast.refresh_from_db()
                    progress.update(task, completed=broadcast.recipients - broadcast.pending)
                    if broadcast.status in finished:
                        return
                    time.sleep(0.25)
        except KeyboardInterrupt:
            self.stderr.write("Stopped watching; the broadcast goes on (cancel it in the API).")
