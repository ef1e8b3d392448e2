"""Export message logs as CSV or NDJSON, to stdout or to a file with a signed manifest."""

import hashlib
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

from clientdesk.audit.services import LedgerBroken, audit_checkpoint_create
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.textcheck import text_argument
from clientdesk.files.storage import files_storage, object_name
from clientdesk.messaging.export import (
    FORMATS,
    ExportRequest,
    ExportResult,
    export_count,
    export_files,
    export_prepare,
    export_recorded,
    export_stream,
)


class Terminated(BaseException):
    """SIGTERM, raised where the export is, so that it ends as Ctrl-C does: recorded."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set there (call_command from a thread)
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Command(BaseCommand):
    help = (
        "Stream message logs (both directions) as CSV or NDJSON. With -o FILE, also write "
        "FILE.manifest.json with the row count, the sha256 of the file and the signed ledger "
        "checkpoint that includes this export's own record."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--since", help="ISO 8601 date or time, inclusive")
        parser.add_argument("--until", help="ISO 8601 date or time, exclusive")
        parser.add_argument("--client", type=text_argument, help="client UUID or external id")
        parser.add_argument("--sender", type=text_argument, help="username of the staff sender")
        parser.add_argument(
            "--direction", choices=("in", "out"), help="in: clients' replies; out: sent"
        )
        parser.add_argument("-o", "--output", metavar="FILE", help="write here, not to stdout")
        parser.add_argument(
            "--with-files",
            metavar="DIR",
            help="with -o: copy the exported messages' attachments into DIR, each named by its "
            "SHA-256 (checked while copied), and list them in the manifest",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            request = export_prepare(
                format=options["format"],
                since=options["since"],
                until=options["until"],
                client=options["client"],
                sender=options["sender"],
                direction=options["direction"],
            )
        except ValidationFailed as error:
            raise CommandError(error.detail, returncode=2) from error
        output = options["output"]
        files_dir = options["with_files"]
        if files_dir and output is None:
            raise CommandError("--with-files needs -o FILE: the manifest beside it lists them.")
        result = ExportResult()
        recorded = export_recorded(
            actor=None, request=request, result=result, via="manage.py export_messages"
        )
        try:
            with _sigterm_raises(), recorded:
                if output is None:
                    # The bar goes to stderr, and only when both are a terminal: never into a pipe.
                    tty = self.stdout.isatty() and sys.stderr.isatty()
                    # The stream call_command was given, else the process's own: bytes go to
                    # its buffer.
                    stream: Any = options.get("stdout") or sys.stdout
                    self._write(request, result, stream, show_progress=tty)
                else:
                    self._write_file(request, result, Path(output))
        except BrokenPipeError:
            # The reader of stdout left (`| head`): recorded as client_disconnected. Python
            # would fail again flushing stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise CommandError(
                f"The reader of the output went away after {result.rows} rows "
                "(recorded in the ledger).",
                returncode=141,
            ) from None
        except (KeyboardInterrupt, Terminated) as stop:
            raise CommandError(
                f"Stopped after {result.rows} rows (recorded in the ledger as failed).",
                returncode=130 if isinstance(stop, KeyboardInterrupt) else 143,
            ) from None
        except OSError as error:
            raise CommandError(
                f"{error.strerror or error}: {error.filename or output or 'stdout'} "
                f"(recorded in the ledger as failed after {result.rows} rows)"
            ) from error
        except Exception as error:
            raise CommandError(
                f"The export failed after {result.rows} rows with {type(error).__name__} "
                f"(recorded in the ledger): {error}"
            ) from error
        if output is not None:
            try:
                checkpoint = audit_checkpoint_create().note
            except LedgerBroken as error:
                raise CommandError(f"Exported, but no checkpoint was signed: {error}") from error
            manifest: dict[str, Any] = {
                "rows": result.rows,
                "sha256": result.sha256,
                "checkpoint": checkpoint,
            }
            if files_dir:
                manifest["files"] = self._copy_files(request, Path(files_dir), Path(output))
            Path(f"{output}.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            self.stderr.write(f"{result.rows} rows, sha256 {result.sha256}")

    def _copy_files(
        self, request: ExportRequest, folder: Path, output: Path
    ) -> list[dict[str, Any]]:
        """Each attached file's bytes from storage into `folder` as `<sha256>`, hashed on the
        way: a stored object whose bytes no longer match its name stops the export with an
        error rather than handing over something else."""
        folder.mkdir(parents=True, exist_ok=True)
        storage = files_storage()
        listed = []
        for file in export_files(request):
            target = folder / file.sha256
            partial = folder / f".{file.sha256}.partial"
            digest = hashlib.sha256()
            with storage.open(object_name(file.sha256), "rb") as source, open(partial, "wb") as out:
                while chunk := source.read(1024 * 1024):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != file.sha256:
                partial.unlink()
                raise CommandError(
                    f"The stored file {file.sha256} no longer has that SHA-256: not exported."
                )
            os.replace(partial, target)
            listed.append(
                {
                    "path": os.path.relpath(target.resolve(), output.resolve().parent),
                    "sha256": file.sha256,
                    "size": file.size,
                    "names": file.names,
                }
            )
        return listed

    def _write_file(self, request: ExportRequest, result: ExportResult, target: Path) -> None:
        """Into a hidden partial file, renamed to `target` only once complete."""
        partial = target.with_name(f".{target.name}.partial")
        try:
            with open(partial, "xb") as f:
                self._write(request, result, f, show_progress=sys.stderr.isatty())
        except FileExistsError as error:
            raise CommandError(f"{partial} exists: is another export running?") from error
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, target)

    def _write(
        self, request: ExportRequest, result: ExportResult, out: IO[Any], *, show_progress: bool
    ) -> None:
        if hasattr(out, "buffer"):
            out = out.buffer
        text = isinstance(out, io.TextIOBase)  # e.g. a StringIO handed to call_command
        chunks = export_stream(request, result)
        if not show_progress:
            for chunk in chunks:
                out.write(chunk.decode() if text else chunk)
            out.flush()
            return
        columns = (
            *Progress.get_default_columns()[:-1],
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("Exporting", total=export_count(request))
            for chunk in chunks:
                out.write(chunk.decode() if text else chunk)
                progress.update(task, completed=result.rows)
        out.flush()
