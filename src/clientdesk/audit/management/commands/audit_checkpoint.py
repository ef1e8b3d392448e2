"""Sequence waiting ledger records and print a signed checkpoint of the whole ledger."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from clientdesk.audit.services import LedgerBroken, audit_checkpoint_create


class Command(BaseCommand):
    help = (
        "Print a signed checkpoint (C2SP signed note) of the audit ledger; save it outside the "
        "database and check later with verify_audit --checkpoint FILE."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = audit_checkpoint_create()
        except LedgerBroken as error:
            raise CommandError(f"No checkpoint signed: {error}") from error
        self.stdout.write(checkpoint.note, ending="")
