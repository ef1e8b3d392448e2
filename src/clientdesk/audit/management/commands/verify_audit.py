"""Check the audit ledger's hash chain and Merkle tree, against a saved checkpoint if given."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clientdesk.audit import signing
from clientdesk.audit.selectors import CHAIN_LIMITS, audit_verify


class Command(BaseCommand):
    help = (
        "Check the audit ledger's hash chain; exit non-zero naming the first bad record. With "
        "--checkpoint FILE, also check that the ledger still holds exactly the records that "
        "signed checkpoint committed to (catches removed newest records, an emptied ledger and "
        "recomputed hashes, which the chain alone cannot)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoint", metavar="FILE", help="a signed checkpoint saved earlier"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = None
        if options["checkpoint"]:
            try:
                note = Path(options["checkpoint"]).read_text(encoding="utf-8")
                checkpoint = signing.checkpoint_open(note)
            except (OSError, UnicodeDecodeError, signing.NoteError) as error:
                raise CommandError(
                    f"Cannot use checkpoint {options['checkpoint']}: {error}"
                ) from error
        result = audit_verify(checkpoint=checkpoint)
        waiting = (
            f" {result.waiting} newer record(s) wait for the sequencer and are not checked yet."
            if result.waiting
            else ""
        )
        if not result.intact:
            raise CommandError(
                f"Audit ledger broken at record #{result.first_bad_sequence}: {result.problem}. "
                f"{result.intact_before_text}{waiting}"
            )
        if checkpoint is None:
            self.stdout.write(
                f"Audit ledger chain intact: {result.checked} records checked.{waiting}\n"
                f"{CHAIN_LIMITS}"
            )
            return
        self.stdout.write(
            f"Audit ledger intact: {result.checked} records checked; the first "
            f"{checkpoint.tree_size} match the signed checkpoint exactly "
            f"(no record edited, removed, inserted or reordered since it was signed).{waiting}\n"
            "Records added after that checkpoint are covered by the chain only."
        )
