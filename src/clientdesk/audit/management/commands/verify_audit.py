"""Check the audit ledger's hash chain."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from clientdesk.audit.selectors import audit_verify


class Command(BaseCommand):
    help = "Check the audit ledger's hash chain; exit non-zero naming the first bad record."

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit_verify()
        if not result.intact:
            raise CommandError(
                f"Audit ledger broken at record #{result.first_bad_sequence}: {result.problem} "
                f"({result.checked} records before it are intact)."
            )
        self.stdout.write(f"Audit ledger intact: {result.checked} records checked.")
