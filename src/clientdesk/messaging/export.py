"""Export of message logs (docs/AUDIT.md): CSV or NDJSON, streamed in bounded chunks, with the
sha256 of the exact bytes and a `messages.exported` ledger record however the export ends.

Rows are read in keyset pages of (created_at, id), each page its own short query, so memory
stays flat, no cursor or transaction stays open between chunks (a client that goes away
mid-stream leaves nothing behind), and the set is fixed at the start: messages created after
the export began (`as_of`) are not in it.
"""

import csv
import hashlib
import io
import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet, TextChoices
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from clientdesk.accounts.models import User
from clientdesk.audit.services import audit_append
from clientdesk.clients.models import Client
from clientdesk.core.bounded import Refused, parse_instant, refused
from clientdesk.core.errors import PermissionDenied, ValidationFailed
from clientdesk.core.pagination import keyset_beyond
from clientdesk.core.time import iso_utc
from clientdesk.delivery.models import Delivery
from clientdesk.files.models import StoredFile
from clientdesk.messaging.models import Message, MessageAttachment
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.selectors import (
    delivery_statuses_by_message,
    files_by_message,
    messages_followup_fields,
)

logger = logging.getLogger(__name__)

FORMATS = ("csv", "ndjson")
# What an export request may say (query parameters of the API, flags of the command).
EXPORT_FILTERS = ("format", "since", "until", "client", "sender", "direction")
COLUMNS = (
    "id",
    "created_at",
    "direction",
    "client_id",
    "client_external_id",
    "client_name",
    "sender_id",
    "sender_name",
    "body",
    "template",
    "template_version",
    "template_edited",
    "read_at",
    "reply_state",
    "delivery_status",
    "attachments",
)
CHUNK_ROWS = 2000
# Databases that format the rows themselves (_line_sql); any other formats them in Python.
_SQL_VENDORS = ("postgresql", "sqlite")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


def check_can_export(user: User) -> None:
    if not user.has_perm(MessagingPermission.EXPORT_MESSAGES):
        raise PermissionDenied("You need the 'Export message logs' permission.")


@dataclass(frozen=True)
class ExportRequest:
    format: str
    since: datetime | None
    until: datetime | None  # exclusive, as asked
    as_of: datetime  # when the export began: nothing created later is in it
    client: Client | None
    sender: User | None
    direction: str | None = None  # "in" (replies) or "out"; None: both

    @property
    def end(self) -> datetime:
        return min(self.until, self.as_of) if self.until else self.as_of

    def filters(self) -> dict[str, Any]:
        """The filters as the ledger records them: plain JSON text, whatever the values."""
        return {
            "format": _ledger_text(self.format),
            "since": _ledger_time(self.since),
            "until": _ledger_time(self.until),
            "as_of": _ledger_time(self.as_of),
            "client": str(self.client.id) if self.client else None,
            "sender": _ledger_text(self.sender.username) if self.sender else None,
            "direction": _ledger_text(self.direction),
        }


def _ledger_time(value: datetime | None) -> str | None:
    """In UTC, as everywhere; a time whose UTC form is out of range (9999-12-31T23:00-05:00)
    keeps its own offset instead of failing the export's record."""
    if value is None:
        return None
    try:
        return iso_utc(value)
    except OverflowError:
        return value.isoformat()


def _ledger_text(value: str | None) -> str | None:
    """Text every database stores in JSON: no NUL, no lone surrogate."""
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode().replace("\x00", "\ufffd")


def _parse_time(name: str, value: str | None) -> datetime | None:
    """A bound of the export: an ISO 8601 date or time within the years 2 to 9998 UTC (naive:
    UTC), checked before the first byte is written."""
    if value is None or value == "":
        return None
    try:
        return parse_instant(value, naive=UTC)
    except Refused as error:
        raise refused(name, error, value) from error


def _check_text(name: str, value: str | None) -> None:
    """NUL and lone surrogates cannot be stored or compared on every database: refuse them."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        ok = False
    else:
        ok = "\x00" not in value
    if not ok:
        raise ValidationFailed(
            f"{name}: contains NUL or invalid Unicode.",
            errors={name: ["Contains NUL or invalid Unicode."]},
        )


def export_prepare(
    *,
    format: str,
    since: str | None = None,
    until: str | None = None,
    client: str | None = None,
    sender: str | None = None,
    direction: str | None = None,
    now: datetime | None = None,
) -> ExportRequest:
    """Check every filter before a byte is written; ValidationFailed names the field."""
    if format not in FORMATS:
        raise ValidationFailed(
            f"format: {format[:20]!r} is not one of csv, ndjson.",
            errors={"format": ["Choose csv or ndjson."]},
        )
    for name, value in (("since", since), ("until", until), ("client", client), ("sender", sender)):
        _check_text(name, value)
    if direction not in (None, "", "in", "out"):
        raise ValidationFailed(
            f"direction: {direction[:20]!r} is not one of in, out.",
            errors={"direction": ["Choose in (from clients) or out (to clients)."]},
        )
    now = now or timezone.now()
    since_at = _parse_time("since", since)
    until_at = _parse_time("until", until)
    if since_at and until_at and since_at > until_at:
        raise ValidationFailed(
            "since is after until.", errors={"since": ["must not be after until"]}
        )
    client_obj = None
    if client:
        try:
            client_obj = Client.objects.filter(Q(external_id=client) | Q(pk=client)).first()
        except (ValidationError, ValueError):
            client_obj = Client.objects.filter(external_id=client).first()
        if client_obj is None:
            raise ValidationFailed(
                f"client: no client with id or external id {client[:64]!r}.",
                errors={"client": ["No such client."]},
            )
    sender_obj = None
    if sender:
        sender_obj = User.objects.filter(username=sender).first()
        if sender_obj is None:
            raise ValidationFailed(
                f"sender: no user named {sender[:64]!r}.", errors={"sender": ["No such user."]}
            )
    return ExportRequest(
        format=format,
        since=since_at,
        until=until_at,
        as_of=now,
        client=client_obj,
        sender=sender_obj,
        direction=direction or None,
    )


def _queryset(request: ExportRequest) -> QuerySet[Message]:
    rows = Message.objects.filter(created_at__lt=request.end)
    if request.since:
        rows = rows.filter(created_at__gte=request.since)
    if request.client:
        rows = rows.filter(client=request.client)
    if request.sender:
        rows = rows.filter(sender=request.sender)
    if request.direction:
        rows = rows.filter(direction=request.direction)
    return rows


def export_count(request: ExportRequest) -> int:
    return _queryset(request).count()


_FIELDS = (
    "id",
    "created_at",
    "direction",
    "client_id",
    "client__external_id",
    "client__first_name",
    "client__last_name",
    "sender_id",
    "sender__username",
    "sender__first_name",
    "sender__last_name",
    "body",
    "template_id",
    "template_version",
    "template_edited",
    "read_at",
    "reply_state",
)


def _pages(request: ExportRequest) -> Iterator[list[SimpleNamespace]]:
    """Pages of plain rows (no model instances: at a million rows they cost most of the time)."""
    base = _queryset(request).order_by("created_at", "id").values_list(*_FIELDS)
    after: tuple[datetime, Any] | None = None
    while True:
        page = base
        if after is not None:
            page = base.filter(
                keyset_beyond(Message, created_at=after[0], pk=after[1], descending=False)
            )
        rows = [
            SimpleNamespace(**dict(zip(_NAMES, values, strict=True)))
            for values in page[:CHUNK_ROWS]
        ]
        if not rows:
            return
        yield rows
        last = (rows[-1].created_at, rows[-1].id)
        if last == after:
            # Only a time stored in another format than Django's could compare equal to
            # itself yet sort after it; never loop on it.
            raise RuntimeError(f"export stopped: rows after {last} do not advance")
        after = last


_NAMES = tuple(f.replace("__", "_") for f in _FIELDS)


def _join(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def _rows(messages: list[SimpleNamespace]) -> Iterator[dict[str, Any]]:
    statuses = delivery_statuses_by_message([m.id for m in messages])
    followup = messages_followup_fields(messages)
    files = files_by_message(m.id for m in messages)
    for m in messages:
        has_sender = m.sender_id is not None
        yield {
            "id": str(m.id),
            "created_at": iso_utc(m.created_at),
            "direction": m.direction,
            "client_id": str(m.client_id),
            "client_external_id": m.client_external_id,
            "client_name": _join(m.client_first_name, m.client_last_name),
            "sender_id": str(m.sender_id) if has_sender else None,
            # As User.display_name: the full name, else the username.
            "sender_name": (_join(m.sender_first_name, m.sender_last_name) or m.sender_username)
            if has_sender
            else None,
            "body": m.body,
            "template": str(m.template_id) if m.template_id else None,
            "template_version": m.template_version,
            # Whether the sender changed the template's text before sending; empty without one.
            "template_edited": m.template_edited if m.template_id else None,
            "read_at": iso_utc(followup[m.id]["read_at"]),
            "reply_state": followup[m.id]["reply_state"],
            "delivery_status": statuses.get(m.id, {}),
            "attachments": [
                {"name": f.name, "sha256": f.sha256}
                for f in (files[m.id].attachments if m.id in files else ())
            ],
        }


# What a spreadsheet (Excel, LibreOffice Calc, Google Sheets) opening the CSV would evaluate as
# a formula (OWASP "CSV Injection", ASVS 1.2.10): a cell that starts with TAB, CR or LF, and a
# cell whose first visible character is = + - @ or a form that Unicode folds into one of them
# (full-width ＝＋－＠, small ﹦﹢﹣﹫, super- and subscript ⁼⁺⁻, and the minus sign −). Such a
# cell gets a leading ' (docs/API.md). "Visible" skips what a spreadsheet may trim and a reader
# cannot see: white space (NBSP, ideographic space...), control and format characters
# (zero-width characters, BOM, bidi marks), combining marks and the other code points Unicode
# calls default-ignorable.
_FORMULA_TRIGGERS = frozenset("=+-@\u2212")
_CONTROL_STARTS = ("\t", "\r", "\n")
# The Hangul fillers: letters to Unicode, yet default-ignorable (blank) like those categories.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _invisible(char: str) -> bool:
    return unicodedata.category(char)[0] in "CZM" or char in _BLANK_LETTERS


def _formula_like(value: str) -> bool:
    first = value[:1]
    if "!" <= first <= "~":  # printable ASCII, almost every cell: decided by that character
        return first in _FORMULA_TRIGGERS
    if value.startswith(_CONTROL_STARTS):
        return True
    for char in value:
        if not _invisible(char):
            return unicodedata.normalize("NFKC", char)[:1] in _FORMULA_TRIGGERS
    return False


def _neutralise(value: str) -> str:
    return "'" + value if _formula_like(value) else value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return _neutralise(";".join(f"{k}:{v}" for k, v in value.items()))
    if isinstance(value, list):  # attachments: "name sha256" pairs; the hash ends each pair
        return _neutralise("; ".join(f"{f['name']} {f['sha256']}" for f in value))
    return _neutralise(str(value))


class ExportOutcome(TextChoices):
    COMPLETED = "completed"
    FAILED = "failed"  # an error stopped it; `error` names the exception's class
    CLIENT_DISCONNECTED = "client_disconnected"  # the reader stopped taking the bytes


@dataclass
class ExportResult:
    """What the reader took (the chunks handed over: their rows, bytes and sha256) and how the
    export ended."""

    rows: int = 0
    size: int = 0  # bytes
    outcome: ExportOutcome = ExportOutcome.COMPLETED
    error: str | None = None
    _digest: Any = field(default_factory=hashlib.sha256, repr=False)

    @property
    def sha256(self) -> str:
        return str(self._digest.hexdigest())

    def took(self, chunk: bytes, rows: int) -> None:
        self.rows += rows
        self.size += len(chunk)
        self._digest.update(chunk)

    def ended_by(self, error: BaseException) -> None:
        # GeneratorExit: the server closed the stream (its client left); a pipe's reader left.
        if isinstance(error, GeneratorExit | BrokenPipeError | ConnectionResetError):
            self.outcome = ExportOutcome.CLIENT_DISCONNECTED
        else:
            self.outcome = ExportOutcome.FAILED
            self.error = type(error).__name__


def _encode(text: str) -> bytes:
    # Lone surrogates cannot be UTF-8; they are replaced rather than failing mid-export.
    return text.encode("utf-8", errors="replace")


def _python_lines(rows: list[SimpleNamespace], fmt: str) -> Iterator[tuple[str, str]]:
    """(id, line) of each row, formatted in Python."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in _rows(rows):
        if fmt == "csv":
            writer.writerow([_csv_cell(row[c]) for c in COLUMNS])
        else:
            buffer.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            buffer.write("\n")
        yield row["id"], buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _header(fmt: str) -> str:
    return ",".join(COLUMNS) + "\r\n" if fmt == "csv" else ""


def _python_chunks(request: ExportRequest) -> Iterator[tuple[str, int]]:
    """The export's text, one chunk per page, each with the number of rows in it."""
    for page in _pages(request):
        yield "".join(line for _, line in _python_lines(page, request.format)), len(page)


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _as_instant(value: Any) -> datetime:
    """created_at as the page query returns it: a datetime, or SQLite's text in UTC."""
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    if parsed is None:
        raise RuntimeError(f"export stopped: {value!r} is no time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sql_chunks(request: ExportRequest) -> Iterator[tuple[str, int]]:
    """As _python_chunks, with the lines formatted by the database (flagged ones in Python)."""
    base = _queryset(request).order_by("created_at", "id").values_list("id")
    after: tuple[datetime, Any] | None = None
    while True:
        page = base
        if after is not None:
            page = base.filter(
                keyset_beyond(Message, created_at=after[0], pk=after[1], descending=False)
            )
        where, params = page.query.get_compiler(connection=connection).compile(page.query.where)
        with connection.cursor() as cursor:
            cursor.execute(_line_sql(connection.vendor, request.format, where), params)
            rows = cursor.fetchall()
        if not rows:
            return
        flagged = [_as_uuid(row[3]) for row in rows if row[1]]
        if flagged:
            found = Message.objects.filter(id__in=flagged).values_list(*_FIELDS)
            redo = dict(
                _python_lines(
                    [SimpleNamespace(**dict(zip(_NAMES, v, strict=True))) for v in found],
                    request.format,
                )
            )
            text = "".join(redo[str(_as_uuid(row[3]))] if row[1] else row[0] for row in rows)
        else:
            text = "".join(row[0] for row in rows)
        yield text, len(rows)
        last = (_as_instant(rows[-1][2]), _as_uuid(rows[-1][3]))
        if last == after:
            raise RuntimeError(f"export stopped: rows after {last} do not advance")
        after = last


def _chunks(request: ExportRequest) -> Iterator[tuple[bytes, int]]:
    """The export's bytes, one chunk per page (the header with the first), each with the
    number of rows in it."""
    pages = _sql_chunks if connection.vendor in _SQL_VENDORS else _python_chunks
    head = _header(request.format)
    for text, rows in pages(request):
        yield _encode(head + text), rows
        head = ""
    if head:  # the header of an empty CSV
        yield _encode(head), 0


def export_stream(request: ExportRequest, result: ExportResult) -> Iterator[bytes]:
    """The export's bytes; `result` counts a chunk once the reader comes back for the next, so
    a chunk the reader failed to take is not counted."""
    for chunk, rows in _chunks(request):
        yield chunk
        result.took(chunk, rows)


@contextmanager
def export_recorded(
    *, actor: User | None, request: ExportRequest, result: ExportResult, via: str
) -> Iterator[None]:
    """The `messages.exported` record of the export run in the block, however the block ends:
    completed, failed (an exception, Ctrl-C) or left by its reader."""
    try:
        yield
    except BaseException as error:
        result.ended_by(error)
        try:
            export_record(actor=actor, request=request, result=result, via=via)
        except Exception:
            # The error that stopped the export is the one to raise; this one is logged.
            logger.exception("export: the ledger record of an export that ended early failed")
        raise
    export_record(actor=actor, request=request, result=result, via=via)


def export_run(*, actor: User | None, request: ExportRequest, via: str) -> Iterator[bytes]:
    """The export's bytes for a server to stream; its record is written when the stream ends
    (read to the end, an error, or the server closing it when its client left)."""
    result = ExportResult()
    with export_recorded(actor=actor, request=request, result=result, via=via):
        yield from export_stream(request, result)


def export_record(
    *, actor: User | None, request: ExportRequest, result: ExportResult, via: str
) -> None:
    """The `messages.exported` ledger record (docs/AUDIT.md)."""
    with transaction.atomic():
        audit_append(
            actor=actor,
            action="messages.exported",
            object_type="message_export",
            object_id=result.sha256,
            created_at=timezone.now(),
            data={
                "filters": request.filters(),
                "rows": result.rows,
                "bytes": result.size,
                "sha256": result.sha256,
                "outcome": result.outcome.value,
                "error": result.error,
                "via": via,
            },
        )


@dataclass(frozen=True)
class ExportedFile:
    """A file attached to exported messages: stored once per content, under every name it was
    sent with."""

    sha256: str
    size: int
    names: list[str]


def export_files(request: ExportRequest) -> list[ExportedFile]:
    """The distinct files (by content) attached to the messages of the export."""
    found: dict[str, ExportedFile] = {}
    rows = (
        MessageAttachment.objects.filter(message__in=_queryset(request).values("id"))
        .order_by("file__sha256", "file__name")
        .values_list("file__sha256", "file__size", "file__name")
    )
    for sha256, size, name in rows:
        entry = found.setdefault(sha256, ExportedFile(sha256=sha256, size=size, names=[]))
        if name not in entry.names:
            entry.names.append(name)
    return list(found.values())


# First characters the query judges itself: printable ASCII (decided by that character), and
# blocks of letters that are visible and fold to no trigger, so no cell they start is a formula
# (Latin-1 and Latin Extended letters, Greek, Cyrillic, Hebrew, Arabic, kana, CJK, Hangul,
# pictographs; tests/messaging/test_export_sql.py checks each against _formula_like).
_VISIBLE_LETTERS = (
    (0xC0, 0x24F),
    (0x38E, 0x3A1),
    (0x3A3, 0x3CE),
    (0x400, 0x481),
    (0x5D0, 0x5EA),
    (0x621, 0x64A),
    (0x3041, 0x3096),
    (0x30A1, 0x30FA),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
    (0x1F300, 0x1F64F),
)
_JUDGED_STARTS = ((33, 126), *_VISIBLE_LETTERS)


# Rows formatted by the database (docs/PERFORMANCE.md, Export): each page is one query whose
# rows are the finished CSV or NDJSON lines, byte for byte what the Python formatting above
# writes. A CSV row with a cell the query cannot judge (one that starts with anything but
# printable ASCII: white space, a control or a non-ASCII character, where _formula_like needs
# Unicode's tables) and a row whose deliveries name a channel twice (the order within a channel
# is the database's) are flagged and formatted in Python.
class _Sql:
    def __init__(self, vendor: str) -> None:
        self.pg = vendor == "postgresql"

    def uuid(self, x: str) -> str:
        if self.pg:
            return f"{x}::text"
        return (
            f"lower(substr({x},1,8)||'-'||substr({x},9,4)||'-'||substr({x},13,4)||'-'"
            f"||substr({x},17,4)||'-'||substr({x},21))"
        )

    def time(self, x: str) -> str:
        if self.pg:
            utc = f"({x} AT TIME ZONE 'UTC')"
            return (
                f"(to_char({utc},'YYYY-MM-DD\"T\"HH24:MI:SS')||CASE WHEN to_char({utc},'US')"
                f"='000000' THEN '' ELSE '.'||to_char({utc},'US') END||'Z')"
            )
        return f"(replace({x},' ','T')||'Z')"

    def code(self, x: str) -> str:
        return f"{'ascii' if self.pg else 'unicode'}(substr({x},1,1))"

    def json(self, x: str) -> str:
        return f"COALESCE(to_json({x})::text,'null')" if self.pg else f"json_quote({x})"

    def agg(self, value: str, sep: str, table: str, where: str, order: str) -> str:
        """The `value`s of the rows of `table` matching `where`, in `order`, joined by `sep`
        (NULL when none)."""
        if self.pg:
            return (
                f"(SELECT string_agg({value},'{sep}' ORDER BY {order}) "  # noqa: S608
                f"FROM {table} WHERE {where})"
            )
        return (
            f"(SELECT group_concat(v,'{sep}') FROM "  # noqa: S608
            f"(SELECT {value} AS v FROM {table} WHERE {where} ORDER BY {order}))"
        )

    @staticmethod
    def join2(a: str, b: str) -> str:
        """As _join: the non-empty parts, joined by a space."""
        return (
            f"(CASE WHEN COALESCE({a},'')='' THEN COALESCE({b},'') "
            f"WHEN COALESCE({b},'')='' THEN {a} ELSE {a}||' '||{b} END)"
        )

    def csv(self, x: str) -> str:
        """As _csv_cell and csv.writer for a text cell a printable ASCII character starts."""
        n = f"(CASE WHEN substr({x},1,1) IN ('=','+','-','@') THEN ''''||{x} ELSE {x} END)"
        find = "strpos" if self.pg else "instr"
        specials = ("','", "'\"'", self.chars(13), self.chars(10))
        special = " OR ".join(f"{find}({x},{c})>0" for c in specials)
        return (
            f"COALESCE(CASE WHEN {special} THEN '\"'||replace({n},'\"','\"\"')||'\"' "
            f"ELSE {n} END,'')"
        )

    def unjudged(self, x: str) -> str:
        """Whether the first character of `x` is neither printable ASCII nor in
        _VISIBLE_LETTERS: only Python can tell whether such a cell reads as a formula."""
        code = self.code(x)
        judged = " OR ".join(f"{code} BETWEEN {a} AND {b}" for a, b in _JUDGED_STARTS)
        return f"(COALESCE({x},'')<>'' AND NOT ({judged}))"

    def chars(self, *codes: int) -> str:
        return "||".join(f"{'chr' if self.pg else 'char'}({c})" for c in codes)


def _line_sql(vendor: str, fmt: str, where: str) -> str:
    """One row per message of the page (the first CHUNK_ROWS that match `where`): its line,
    whether Python must format it instead, and its (created_at, id) as stored. The text holds
    only table and column names and constants; every value is a parameter of `where`."""
    s = _Sql(vendor)
    message, client = Message._meta.db_table, Client._meta.db_table
    user, delivery = User._meta.db_table, Delivery._meta.db_table
    attachment, stored = MessageAttachment._meta.db_table, StoredFile._meta.db_table
    has_sender = "m.sender_id IS NOT NULL"
    has_template = "m.template_id IS NOT NULL"
    text = {
        "id": s.uuid("m.id"),
        "created_at": s.time("m.created_at"),
        "direction": "m.direction",
        "client_id": s.uuid("m.client_id"),
        "client_external_id": "c.external_id",
        "client_name": s.join2("c.first_name", "c.last_name"),
        "sender_id": f"CASE WHEN {has_sender} THEN {s.uuid('m.sender_id')} END",
        "sender_name": f"CASE WHEN {has_sender} THEN "
        f"COALESCE(NULLIF({s.join2('u.first_name', 'u.last_name')},''),u.username) END",
        "body": "m.body",
        "template": f"CASE WHEN {has_template} THEN {s.uuid('m.template_id')} END",
        "template_version": "CAST(m.template_version AS TEXT)",
        "template_edited": f"CASE WHEN {has_template} THEN "
        "CASE WHEN m.template_edited THEN 'true' ELSE 'false' END END",
        "read_at": s.time("m.read_at"),
        "reply_state": "m.reply_state",
    }
    deliveries = (f"{delivery} d", "d.subject_id=m.id", "d.channel")
    files = (f"{attachment} a JOIN {stored} f ON f.id=a.file_id", "a.message_id=m.id", "a.position")
    twice = (
        f"(SELECT count(*)<>count(DISTINCT d.channel) FROM {delivery} d "  # noqa: S608
        "WHERE d.subject_id=m.id)"
    )
    if fmt == "csv":
        text["delivery_status"] = s.agg("d.channel||':'||d.status", ";", *deliveries)
        text["attachments"] = s.agg("f.name||' '||f.sha256", "; ", *files)
        judged = ("template_edited", "template_version")  # "true", "false", digits
        # Each value is computed once (MATERIALIZED), then read by the several tests of a cell.
        selected = ", ".join(f"{text[c]} AS v_{c}" for c in COLUMNS)
        cells = [f"COALESCE(v_{c},'')" if c in judged else s.csv(f"v_{c}") for c in COLUMNS]
        line = "||','||".join(cells) + "||" + s.chars(13, 10)
        unjudged = [s.unjudged(f"v_{c}") for c in COLUMNS if c not in judged]
        flag = "(" + " OR ".join([*unjudged, "v_twice"]) + ")"
        sql = (
            f"WITH r AS MATERIALIZED (SELECT {selected}, {twice} AS v_twice, "  # noqa: S608
            f"m.created_at AS v_at, m.id AS v_key {{page}}) "
            f"SELECT {line}, {flag}, v_at, v_key FROM r ORDER BY v_at, v_key"
        )
    else:
        verbatim = ("template_version", "template_edited")  # a number, true, false or null
        values = {
            c: f"COALESCE({text[c]},'null')" if c in verbatim else s.json(text[c]) for c in text
        }
        pair = f"{s.json('d.channel')}||':'||{s.json('d.status')}"
        statuses = s.agg(pair, ",", *deliveries)
        values["delivery_status"] = f"COALESCE('{{'||{statuses}||'}}','{{}}')"
        item = f"'{{\"name\":'||{s.json('f.name')}||',\"sha256\":'||{s.json('f.sha256')}||'}}'"
        values["attachments"] = f"COALESCE('['||{s.agg(item, ',', *files)}||']','[]')"
        fields = [f"'{',' if i else '{'}\"{c}\":'||{values[c]}" for i, c in enumerate(COLUMNS)]
        line = "||".join(fields) + "||'}'||" + s.chars(10)
        sql = f"SELECT {line}, {twice}, m.created_at, m.id {{page}}"
    page = (
        f"FROM {message} m JOIN {client} c ON c.id=m.client_id "
        f"LEFT JOIN {user} u ON u.id=m.sender_id WHERE {{where}} "
        f"ORDER BY m.created_at, m.id LIMIT {CHUNK_ROWS}"
    )
    # The page's conditions are Django's, which name the message table: so does this text.
    sql = re.sub(r"\bm\.", f'"{message}".', sql.replace("{page}", page))
    return sql.replace(f"{message} m ", f'"{message}" ').replace("{where}", where)
