"""The import of clients from a CSV file: create or update by `external_id`, streamed in chunks,
with a report of what was created, updated and refused, line by line.

How a file is read (docs/API.md, "Import clients"):
- UTF-8, with or without a byte-order mark; LF, CRLF or CR line ends; quoted fields may span
  lines. A header row names the columns: `external_id` (required), `first_name`, `last_name`,
  `email`, `phone`, `language`, `timezone`, `outreach_opt_out`, and `attr:NAME` for a custom
  attribute. A column the header leaves out is left as it is on an updated client.
- Cells are trimmed. An empty cell clears the field (`language` goes back to `en`, an attribute
  is removed), except `outreach_opt_out`, where empty leaves the consent as it is.
- A row that cannot be used (wrong number of cells, invalid UTF-8, NUL, a value the client
  rules refuse, more than MAX_RECORD_CHARS characters) is an error naming its line (the
  physical line where the row starts; the header is line 1) and is not written; the rows
  around it are. A file that cannot be read at all (no or bad header, too large) is refused
  before anything is written.
- The same external id on several rows: they apply in file order, so the later row wins (the
  earlier one counts as created or updated, the later one as updated).
- Updating an existing client needs *Can change client*, changing `outreach_opt_out` too (and
  goes through `client_consent_change`: a `client.consent_changed` record per client).

Rows are applied in chunks of CHUNK_ROWS, each in one transaction (bulk insert and bulk update,
the derived search fields computed by `Client.refresh_derived()` as every client write does; on
SQLite the FTS triggers of `clients/search_index.py` follow the inserted and updated rows). Only
two chunks are held at a time, whatever the file's size. The ledger gets one `clients.imported`
record per import, in the transaction of the last chunk; an import stopped half-way (the
upload cut, the process stopped) records what it had committed with `"complete": false`.
Running the same file again is safe: it updates what the first run created.
"""

import copy
import csv
import hashlib
import io
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from operator import attrgetter
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    models,
    transaction,
)
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.consent import client_consent_change
from clientdesk.clients.models import Client
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.clients.validators import ATTRIBUTE_NAME, MAX_ATTRIBUTES
from clientdesk.core.errors import ApplicationError, ValidationFailed
from clientdesk.core.ledger import ledger_record
from clientdesk.core.textcheck import text_problem

FIELDS = ("first_name", "last_name", "email", "phone", "language", "timezone")
CONSENT = "outreach_opt_out"
KEY = "external_id"
ATTR_PREFIX = "attr:"
MAX_COLUMNS = 2 + len(FIELDS) + MAX_ATTRIBUTES
# A row (all its physical lines) longer than this is refused: the longest a valid row can be
# is about 27,000 characters (50 attributes of 500).
MAX_RECORD_CHARS = 64 * 1024
CHUNK_ROWS = 1_000
# The report lists at most this many rows' errors (`error_rows` counts them all), so that a file
# of a million bad rows still answers in constant memory.
MAX_LISTED_ERRORS = 1_000
PREVIEW_ROWS = 10
# A chunk that met a concurrent import's new client (a unique index conflict) or a deadlock is
# read again and redone this many times.
CHUNK_ATTEMPTS = 5
TRUE_WORDS = frozenset({"true", "yes", "1", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "n"})
_READ_BYTES = 64 * 1024


class ImportRefused(ValidationFailed):
    """The file cannot be used at all (its header, its encoding): nothing was written."""

    type_slug = "import-refused"


class ImportTooLarge(ApplicationError):
    status = 413
    title = "Content too large"
    type_slug = "body-too-large"


class ImportTruncated(ApplicationError):
    """The body ended before its announced length (the upload was cut)."""

    type_slug = "upload-truncated"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    error_rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    sha256: str = ""
    complete: bool = False
    dry_run: bool = False
    preview: list[dict[str, Any]] = field(default_factory=list)

    def add_error(self, line: int, errors: dict[str, list[str]]) -> None:
        self.error_rows += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append({"line": line, "errors": errors})

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": self.errors,
            "error_rows": self.error_rows,
            "errors_truncated": self.error_rows > len(self.errors),
            "rows": self.rows,
            "sha256": self.sha256,
            "dry_run": self.dry_run,
        }
        if self.dry_run:
            body["preview"] = self.preview
        return body


class _Source(io.RawIOBase):
    """The uploaded bytes, counted and hashed as they are read; more than `limit` bytes, or
    fewer than `expected`, stop the import."""

    def __init__(self, raw: IO[bytes], *, limit: int | None, expected: int | None) -> None:
        super().__init__()
        self.raw = raw
        self.limit = limit
        self.expected = expected
        self.size = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if self.expected is not None:
            want = min(want, max(self.expected - self.size, 0))
            if want == 0:
                return 0
        data = self.raw.read(want)
        if not data:
            if self.expected is not None and self.size < self.expected:
                raise ImportTruncated(
                    f"The upload ended after {self.size:,} of {self.expected:,} bytes."
                )
            return 0
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise ImportTooLarge(f"The file is over the limit of {self.limit:,} bytes.")
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)


class _RowTooLong(Exception):
    pass


class _Lines:
    """Physical lines for the csv module, each read with a bounded `readline`; a row longer than
    MAX_RECORD_CHARS raises _RowTooLong once the rest of its physical line is skipped."""

    def __init__(self, text: io.TextIOBase) -> None:
        self.text = text
        self.number = 0  # physical lines read so far
        self.row_chars = 0  # characters of the row being read

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = self.text.readline(MAX_RECORD_CHARS - self.row_chars + 1)
        if not line:
            raise StopIteration
        self.number += 1
        self.row_chars += len(line)
        if self.row_chars > MAX_RECORD_CHARS:
            while line and not line.endswith(("\n", "\r")):
                line = self.text.readline(_READ_BYTES)
            raise _RowTooLong
        return line


@dataclass
class _Row:
    line: int
    values: dict[str, str]
    attributes: dict[str, str]
    opt_out: bool | None


@dataclass
class _Header:
    columns: list[str]
    fields: list[str]  # of FIELDS, in the file
    attributes: list[str]
    consent: bool


def _header(cells: list[str]) -> _Header:
    if len(cells) > MAX_COLUMNS:
        raise ImportRefused(
            f"The header has {len(cells):,} columns; at most {MAX_COLUMNS} are allowed "
            f"(external_id, {', '.join(FIELDS)}, {CONSENT} and up to {MAX_ATTRIBUTES} "
            "attr:NAME columns)."
        )
    columns = [cell.strip() for cell in cells]
    problems: list[str] = []
    for name in columns:
        if text_problem(name) is not None:
            problems.append("a column name is not valid UTF-8 text")
        elif name.startswith(ATTR_PREFIX):
            if not ATTRIBUTE_NAME.match(name[len(ATTR_PREFIX) :]):
                problems.append(
                    f"{name[:60]!r}: an attribute name is letters, digits and _ (starting with "
                    "a letter or _), up to 40 characters"
                )
        elif name not in (KEY, CONSENT, *FIELDS):
            problems.append(f"{name[:60]!r} is not a column of the import")
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        problems.append(f"repeated column {', '.join(repr(d[:60]) for d in duplicates[:5])}")
    if KEY not in columns:
        problems.append("the external_id column is required")
    if problems:
        raise ImportRefused(
            "The header row cannot be used: " + "; ".join(problems[:10]) + ".",
            errors={"header": problems[:10]},
        )
    return _Header(
        columns=columns,
        fields=[name for name in columns if name in FIELDS],
        attributes=[name[len(ATTR_PREFIX) :] for name in columns if name.startswith(ATTR_PREFIX)],
        consent=CONSENT in columns,
    )


def _row(header: _Header, line: int, cells: list[str]) -> _Row | dict[str, list[str]]:
    """The row's values, or its errors."""
    if len(cells) != len(header.columns):
        return {
            "non_field_errors": [
                f"This row has {len(cells):,} cells; the header has {len(header.columns)}."
            ]
        }
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    attributes: dict[str, str] = {}
    opt_out: bool | None = None
    for name, cell in zip(header.columns, cells, strict=True):
        value = cell.strip()
        if problem := text_problem(value):
            if "\x00" not in value:
                problem = "is not valid UTF-8 text."
            errors[name] = [f"This cell {problem}"]
            continue
        if name.startswith(ATTR_PREFIX):
            attributes[name[len(ATTR_PREFIX) :]] = value
        elif name == CONSENT:
            word = value.lower()
            if word in TRUE_WORDS:
                opt_out = True
            elif word in FALSE_WORDS:
                opt_out = False
            elif word:
                errors[name] = ["Must be true or false (or empty to leave it as it is)."]
        else:
            values[name] = value
    if errors:
        return errors
    return _Row(line=line, values=values, attributes=attributes, opt_out=opt_out)


def _records(
    stream: IO[bytes], report: ImportReport, *, limit: int | None, expected: int | None
) -> tuple[_Header, Iterator[_Row], _Source]:
    """The header and an iterator of the file's usable rows; unusable rows go to the report."""
    source = _Source(stream, limit=limit, expected=expected)
    text = io.TextIOWrapper(
        io.BufferedReader(source, _READ_BYTES),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )
    lines = _Lines(text)
    reader = csv.reader(lines)
    try:
        first = next(reader, None)
    except (_RowTooLong, csv.Error) as error:
        raise ImportRefused(
            "The header row cannot be read: it is not a CSV header row of the import."
        ) from error
    if first is None or not any(cell.strip() for cell in first):
        raise ImportRefused("The file is empty: it needs a header row and rows of clients.")
    header = _header(first)

    def rows() -> Iterator[_Row]:
        nonlocal reader
        while True:
            start = lines.number + 1
            lines.row_chars = 0
            try:
                cells = next(reader)
            except StopIteration:
                return
            except _RowTooLong:
                report.add_error(
                    start,
                    {"non_field_errors": [f"The row is over {MAX_RECORD_CHARS:,} characters."]},
                )
                reader = csv.reader(lines)  # starts afresh at the next physical line
                continue
            except csv.Error as error:
                report.add_error(start, {"non_field_errors": [f"Not a CSV row: {error}."]})
                reader = csv.reader(lines)
                continue
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, e.g. at the end
            report.rows += 1
            row = _row(header, start, cells)
            if isinstance(row, dict):
                report.add_error(start, row)
                continue
            yield row

    return header, rows(), source


@dataclass
class _Chunk:
    """What applying one chunk did, merged into the report only once its transaction commits."""

    created: list[Client] = field(default_factory=list)
    updated: dict[str, Client] = field(default_factory=dict)
    created_count: int = 0
    updated_count: int = 0
    unchanged: int = 0
    errors: list[tuple[int, dict[str, list[str]]]] = field(default_factory=list)
    consent: dict[str, bool] = field(default_factory=dict)
    preview: list[dict[str, Any]] = field(default_factory=list)


_COMPARED = (*FIELDS, "attributes", "search_text", "sort_name")
_NOT_SET = [
    f.name for f in Client._meta.concrete_fields if f.name not in (KEY, *FIELDS, "attributes")
]


def _apply(
    rows: list[_Row],
    header: _Header,
    *,
    actor: User | None,
    may_change: bool,
    lock: bool,
    preview: int,
) -> _Chunk:
    """Validate the chunk's rows against the clients they update; writes nothing."""
    out = _Chunk()
    wanted = sorted({row.values[KEY] for row in rows if row.values.get(KEY)})
    found = Client.objects.filter(external_id__in=wanted).order_by("external_id")
    if lock:
        found = found.select_for_update()
    existing = {client.external_id: client for client in found}
    new: dict[str, Client] = {}
    for row in rows:
        key = row.values.get(KEY, "")
        base = out.updated.get(key) or new.get(key) or existing.get(key)
        is_update = base is not None
        if is_update and not may_change:
            out.errors.append(
                (
                    row.line,
                    {
                        KEY: [
                            f"A client with external_id {key!r} exists; updating it needs the "
                            "'Can change client' permission."
                        ]
                    },
                )
            )
            continue
        if base is None:
            candidate = Client(external_id=key)
        else:
            candidate = copy.copy(base)
            candidate.attributes = dict(base.attributes)
        for name in header.fields:
            value = row.values[name]
            setattr(candidate, name, value or ("en" if name == "language" else ""))
        for name, value in row.attributes.items():
            if value:
                candidate.attributes[name] = value
            else:
                candidate.attributes.pop(name, None)
        candidate.refresh_derived()
        try:
            # The model's own rules, for the fields an import sets (the others are defaults or
            # as stored); uniqueness is the chunk's own business (by external_id).
            candidate.full_clean(exclude=_NOT_SET, validate_unique=False)
        except ValidationError as error:
            out.errors.append((row.line, error.message_dict))
            continue
        if base is None and not candidate.first_name:
            out.errors.append((row.line, {"first_name": ["A new client needs a first name."]}))
            continue
        current = out.consent.get(key, base.outreach_opt_out) if base is not None else False
        if row.opt_out is not None and row.opt_out != current:
            if actor is not None and not actor.has_perm(ClientsPermission.CHANGE_CLIENT):
                out.errors.append(
                    (
                        row.line,
                        {
                            CONSENT: [
                                "Changing a client's consent needs the 'Can change client' "
                                "permission."
                            ]
                        },
                    )
                )
                continue
            out.consent[key] = row.opt_out
        action = "create"
        if key in new:
            new[key] = candidate
            out.updated_count += 1
            action = "update"
        elif base is None:
            new[key] = candidate
            out.created_count += 1
        elif any(getattr(candidate, f) != getattr(base, f) for f in _COMPARED) or (
            key in out.consent
        ):
            out.updated[key] = candidate
            out.updated_count += 1
            action = "update"
        else:
            out.unchanged += 1
            action = "unchanged"
        if len(out.preview) < preview:
            out.preview.append(
                {
                    "line": row.line,
                    "action": action,
                    KEY: key,
                    **{name: getattr(candidate, name) for name in FIELDS},
                    CONSENT: out.consent.get(key, current),
                    "attributes": candidate.attributes,
                }
            )
    out.created = sorted(new.values(), key=lambda c: c.external_id)
    return out


# Fields whose Python value is already what the database driver takes (the others go through
# the ORM's own conversion: the UUID, the JSON attributes, the times).
_PLAIN_FIELDS = (models.CharField, models.TextField, models.BooleanField)


def _execute_many(sql: str, clients: list[Client], fields: list[Any]) -> None:
    """One statement, prepared once and run for every client of the chunk (`executemany`),
    with each value converted as the ORM converts it for saving."""
    values = attrgetter(*(field.attname for field in fields))
    converted = [
        (index, column)
        for index, column in enumerate(fields)
        if not isinstance(column, _PLAIN_FIELDS)
    ]
    rows = []
    for client in clients:
        row = list(values(client))
        for index, column in converted:
            row[index] = column.get_db_prep_save(row[index], connection)
        rows.append(row)
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _write(chunk: _Chunk, header: _Header, *, actor: User | None) -> None:
    """The chunk's inserts and updates (inside the caller's transaction). Set-based, but not
    bulk_create / bulk_update: those compile every value of every row in Python (half the CPU
    of an import), and bulk_update's CASE over the whole batch grows with its square (44 s
    for 10,000 updated clients). On SQLite the FTS triggers follow each inserted and updated
    row as they do for any other write."""
    meta = Client._meta
    table = connection.ops.quote_name(meta.db_table)
    columns = {f.name: f for f in meta.concrete_fields}
    now = timezone.now()
    if chunk.created:
        for client in chunk.created:
            client.created_at = client.updated_at = now
        fields = list(columns.values())
        names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        _execute_many(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - from the model
            chunk.created,
            fields,
        )
    changed = sorted(chunk.updated.values(), key=lambda c: c.external_id)
    if changed:
        for client in changed:
            client.updated_at = now
        wanted = [*header.fields, "search_text", "sort_name", "updated_at"]
        if header.attributes:
            wanted.append("attributes")
        fields = [columns[name] for name in wanted]
        sets = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in fields)
        _execute_many(
            f"UPDATE {table} SET {sets} WHERE id = %s",  # noqa: S608 - from the model
            changed,
            [*fields, columns["id"]],
        )
    if chunk.consent:
        ids = dict(
            Client.objects.filter(external_id__in=list(chunk.consent)).values_list(
                "external_id", "pk"
            )
        )
        for key, opt_out in sorted(chunk.consent.items()):
            client_consent_change(
                client_id=ids[key], opt_out=opt_out, actor=actor, by_client=False, via="import"
            )


def _retryable(error: DatabaseError) -> bool:
    """A unique-index conflict with a concurrent import, or a deadlock between two."""
    if isinstance(error, IntegrityError):
        return True
    return isinstance(error, OperationalError) and "deadlock" in str(error).lower()


def clients_import(
    *,
    stream: IO[bytes],
    actor: User | None,
    via: str,
    dry_run: bool = False,
    max_bytes: int | None = None,
    expected_bytes: int | None = None,
    progress: Callable[[ImportReport, int], None] | None = None,
) -> ImportReport:
    """Import the CSV read from `stream` (binary). `actor` None: Clientdesk itself (the
    command). `dry_run`: validate and count against the clients as they are, write nothing,
    and show the first rows as they would be written. `progress(report, bytes_read)` is called
    after every chunk. Raises ImportRefused (nothing written) when the file cannot be used,
    ImportTooLarge past `max_bytes`, ImportTruncated when fewer than `expected_bytes` come."""
    report = ImportReport(dry_run=dry_run)
    header, rows, source = _records(stream, report, limit=max_bytes, expected=expected_bytes)
    may_change = actor is None or actor.has_perm(ClientsPermission.CHANGE_CLIENT)
    lock = connection.vendor == "postgresql" and not dry_run
    written = False

    def chunks() -> Iterator[list[_Row]]:
        batch: list[_Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) == CHUNK_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

    def record(*, complete: bool, last: _Chunk | None = None) -> None:
        """The import's one ledger record; `last`: the chunk being committed with it."""
        created = report.created + (last.created_count if last else 0)
        updated = report.updated + (last.updated_count if last else 0)
        ledger_record(
            actor=actor,
            action="clients.imported",
            object_type="client",
            object_id="",
            data={
                "count": created + updated,
                "created": created,
                "updated": updated,
                "unchanged": report.unchanged + (last.unchanged if last else 0),
                "error_rows": report.error_rows + (len(last.errors) if last else 0),
                "rows": report.rows,
                "bytes": source.size,
                "sha256": source.digest.hexdigest(),
                "complete": complete,
                "via": via[:40],
            },
        )

    def settle(batch: list[_Row], *, last: bool) -> None:
        nonlocal written
        for attempt in range(CHUNK_ATTEMPTS):
            try:
                # A dry run takes no transaction: on SQLite that would take the write lock.
                with nullcontext() if dry_run else transaction.atomic():
                    chunk = _apply(
                        batch,
                        header,
                        actor=actor,
                        may_change=may_change,
                        lock=lock,
                        preview=PREVIEW_ROWS - len(report.preview) if dry_run else 0,
                    )
                    if not dry_run:
                        _write(chunk, header, actor=actor)
                        if last:
                            record(complete=True, last=chunk)
            except DatabaseError as error:
                if not _retryable(error) or attempt == CHUNK_ATTEMPTS - 1:
                    raise
                continue
            _merge(report, chunk)
            written = written or not dry_run
            return

    try:
        pending: list[_Row] | None = None
        for batch in chunks():
            if pending is not None:
                settle(pending, last=False)
                if progress is not None:
                    progress(report, source.size)
            pending = batch
        # The file is read to its end: what is left is the last chunk (or nothing).
        if pending is not None:
            settle(pending, last=True)
        elif not dry_run:
            with transaction.atomic():
                record(complete=True)
    except BaseException:
        if written and not dry_run:
            with transaction.atomic():
                record(complete=False)
        raise
    report.sha256 = source.digest.hexdigest()
    report.bytes = source.size
    report.complete = True
    report.errors.sort(key=lambda error: int(error["line"]))
    if progress is not None:
        progress(report, source.size)
    return report


def _merge(report: ImportReport, chunk: _Chunk) -> None:
    report.created += chunk.created_count
    report.updated += chunk.updated_count
    report.unchanged += chunk.unchanged
    for line, errors in chunk.errors:
        report.add_error(line, errors)
    report.preview.extend(chunk.preview)
