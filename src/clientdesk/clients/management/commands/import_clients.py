"""Import clients from a CSV file (create or update by external_id), with a progress bar."""

import json
import os
import sys
from contextlib import ExitStack
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from clientdesk.clients.importing import ImportRefused, ImportReport, clients_import


class Command(BaseCommand):
    help = (
        "Import clients from a CSV file with a header row (external_id, first_name, last_name, "
        "email, phone, language, timezone, outreach_opt_out, attr:NAME): create or update by "
        "external_id. Prints the report as JSON; a bad row is an error of its line and never "
        "stops the others. Exit 0 when the file was read (even with row errors), 2 when the "
        "file itself cannot be used."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the CSV file; - reads standard input")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="check every row and count what would change; write nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        with ExitStack() as stack:
            if name == "-":
                stream: IO[bytes] = sys.stdin.buffer
                total = None
            else:
                try:
                    stream = stack.enter_context(open(name, "rb"))
                    total = os.fstat(stream.fileno()).st_size
                except OSError as error:
                    raise CommandError(f"{error.strerror}: {name}", returncode=2) from error
            report = self._import(stream, total, dry_run=options["dry_run"])
        self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        self.stderr.write(
            f"{'Would create' if report.dry_run else 'Created'} {report.created:,}, "
            f"updated {report.updated:,}, unchanged {report.unchanged:,}; "
            f"{report.error_rows:,} rows with errors."
        )

    def _import(self, stream: IO[bytes], total: int | None, *, dry_run: bool) -> ImportReport:
        via = "manage.py import_clients"
        try:
            # The bar goes to stderr, and only on a terminal: never into a pipe or a log.
            if not sys.stderr.isatty():
                return clients_import(stream=stream, actor=None, via=via, dry_run=dry_run)
            columns = (
                *Progress.get_default_columns()[:-1],
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("Importing", total=total)

                def show(report: ImportReport, done: int) -> None:
                    progress.update(task, completed=done)

                return clients_import(
                    stream=stream, actor=None, via=via, dry_run=dry_run, progress=show
                )
        except ImportRefused as error:
            raise CommandError(error.detail, returncode=2) from error
        except KeyboardInterrupt:
            raise CommandError(
                "Stopped; the rows written so far stay (recorded in the ledger). Running the "
                "same file again updates them.",
                returncode=130,
            ) from None
        except OSError as error:
            raise CommandError(f"The file cannot be read: {error}", returncode=2) from error
