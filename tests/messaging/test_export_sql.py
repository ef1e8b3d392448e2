"""The database formats the export's rows (messaging/export.py, `_line_sql`): byte for byte
what the Python formatting writes, for hostile text in every text column, every optional
column, times with and without microseconds, attachments and deliveries (a channel named twice
included), across page boundaries, with filters, on both databases."""

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from clientdesk.clients.models import Client
from clientdesk.delivery.models import Delivery
from clientdesk.files.models import StoredFile
from clientdesk.messaging import export
from clientdesk.messaging.models import Message, MessageAttachment, MessageTemplate

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
HOSTILE = [
    "",
    " ",
    "=1+1",
    "+",
    "-",
    "@",
    "'",
    ",",
    '"',
    '",\r\n',
    "a\x01\x1f\x7f\b\f\t\n\r\\/",
    "\u2028\u2029",
    "é=",
    "\u00a0=1",
    "\u200b+1",
    "＝1",
    "−1",
    "😀 emoji",
    "<script>alert(1)</script>",
    "x" * 70_000,
    "\tx",
    "\rx",
    "\nx",
    "line1\nline2",
    'a,b "q"',
    "\ufeff=",
    "plain text",
    "Zoë",
    "ünïcode =1",
    "Ελληνικά",
    "日本語",
    "\u00ad=1",
    "×=",
]


def _both(fmt: str, **filters: str) -> tuple[str, str]:
    request = export.export_prepare(format=fmt, **filters)
    by_sql = "".join(text for text, _ in export._sql_chunks(request))
    by_python = "".join(text for text, _ in export._python_chunks(request))
    return by_sql, by_python


@pytest.fixture
def hostile(agent, make_user, make_client, monkeypatch):
    """A message per hostile text, each text also in names, external ids, file names and
    delivery statuses; pages of 7 rows."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 7)
    nameless = make_user("Agent", first_name="", last_name="")
    template = MessageTemplate.objects.create(name="Statement", created_by=agent)
    clients = []
    for n, text in enumerate(HOSTILE):
        client = make_client()
        Client.objects.filter(pk=client.pk).update(
            external_id=text[:64], first_name=text[:100], last_name=HOSTILE[-n][:100]
        )
        clients.append(client)
    for n, text in enumerate(HOSTILE):
        created = T0 + timedelta(seconds=n, microseconds=(n % 3) * 123_457)
        message = Message.objects.create(
            client=clients[n],
            direction="in" if n % 4 == 3 else "out",
            sender=None if n % 4 == 3 else (nameless if n % 4 == 1 else agent),
            body=text or "-",
            source=text,
            created_at=created,
            read_at=created + timedelta(hours=1, microseconds=n % 2) if n % 2 else None,
            template=template if n % 3 == 0 else None,
            template_version=n if n % 3 == 0 else None,
            template_edited=n % 2 == 0,
        )
        for position in range(n % 3):
            stored = StoredFile.objects.create(
                sha256=f"{n:02d}{position:062d}",
                name=(HOSTILE[(n + position) % len(HOSTILE)] or "f")[:255],
                size=1,
                content_type="text/plain",
                client=clients[n],
                created_at=created,
            )
            MessageAttachment.objects.create(message=message, file=stored, position=position)
        channels = ["webhook", "push"][: n % 3] + (["push"] if n % 5 == 4 else [])
        for channel in channels:
            Delivery.objects.create(
                channel=channel,
                client=clients[n],
                subject_id=message.id,
                payload={},
                webhook_id=str(uuid.uuid4()),
                status=["pending", "delivered", "failed"][n % 3],
                created_at=created,
            )
    # The same instant twice: the keyset's tie on created_at is broken by the id.
    Message.objects.create(client=clients[0], sender=agent, body="tie", source="tie", created_at=T0)
    return clients


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_the_database_writes_the_bytes_python_writes(hostile, fmt):
    by_sql, by_python = _both(fmt)
    assert by_sql == by_python
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(by_sql, newline="")))
        assert len(rows) == len(HOSTILE) + 1  # no header here: only the pages
        assert all(len(row) == len(export.COLUMNS) for row in rows)
    else:
        rows = [json.loads(line) for line in by_sql.split("\n")[:-1]]
        assert [list(row) for row in rows] == [list(export.COLUMNS)] * (len(HOSTILE) + 1)
        assert any(row["attachments"] for row in rows)
        assert any(row["delivery_status"] for row in rows)


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_filters_select_the_same_rows_formatted_the_same(hostile, agent, fmt):
    for filters in (
        {"client": str(hostile[2].id)},
        {"sender": agent.username},
        {"direction": "in"},
        {"since": "2026-11-02T09:30:05Z", "until": "2026-11-02T09:30:12.5Z"},
    ):
        by_sql, by_python = _both(fmt, **filters)
        assert by_sql == by_python
        assert by_sql


def test_the_letters_the_query_judges_start_no_formula():
    """A cell that starts with one of them is never a formula, whatever follows, so the query
    writes it without asking Python (messaging/export.py, _VISIBLE_LETTERS)."""
    for first, last in export._VISIBLE_LETTERS:
        for code in range(first, last + 1):
            char = chr(code)
            assert not export._invisible(char), hex(code)
            assert not export._formula_like(char + "=1+1"), hex(code)
