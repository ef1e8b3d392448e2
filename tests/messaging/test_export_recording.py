"""An export that ends early is still a `messages.exported` ledger record, with the rows and
the sha256 of the bytes handed over before the end and how it ended.

Run for real: the API and the Messages page's Export link through granian, both tiers as the
Procfile runs them (`web`: WSGI; `events`: ASGI, as `make run` serves everything); the command
in its own process writing into a pipe. A client closes the connection after the first chunk;
the database fails mid-way (the `body` column renamed while the export waits for its reader:
the next page's query fails); Ctrl-C, SIGTERM, a closed pipe and an unwritable `-o FILE`.
"""

import contextlib
import hashlib
import io
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client as DjangoClient
from django.utils.html import strip_tags

from clientdesk.accounts.services import api_token_create
from clientdesk.audit.models import AuditEntry, AuditRecord
from clientdesk.audit.sentences import record_sentences
from clientdesk.audit.services import audit_sequence
from clientdesk.messaging.export import ExportRequest, export_record, export_recorded, export_run
from clientdesk.messaging.export import ExportResult as Result
from clientdesk.messaging.models import Message
from tests.sending import write_texts
from tests.servers import ROOT, child_env, procfile_process

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
TOTAL = 24_000  # about 16 MB of CSV: far more than the server and the socket hold unread
BODY = "z" * 600
ROW_BYTES = 600  # at least, per row
TIERS = ["web", "events"]  # granian WSGI, granian ASGI


@pytest.fixture
def messages(make_client, agent) -> int:
    client = make_client()
    Message.objects.bulk_create(
        [
            Message(
                client=client,
                sender=agent,
                body=f"{BODY} {i}",
                source=BODY,
                created_at=T0 + timedelta(seconds=i),
            )
            for i in range(TOTAL)
        ],
        batch_size=4000,
    )
    return TOTAL


def _record(via: str, timeout: float = 60) -> dict[str, Any]:
    """The data of the one `messages.exported` record made `via`, once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            data
            for model in (AuditEntry, AuditRecord)
            for data in model.objects.filter(action="messages.exported").values_list(
                "data", flat=True
            )
            if data["via"] == via
        ]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"no messages.exported record via {via!r}"
        time.sleep(0.2)


def _full_csv() -> bytes:
    out = io.StringIO()
    call_command("export_messages", "--format", "csv", stdout=out)
    return out.getvalue().encode()


def _assert_prefix(record: dict[str, Any], received: bytes | None = None) -> None:
    """The record's rows and sha256 are those of the first `bytes` bytes of the whole export,
    a prefix that ends at a row's end; and the client got at least those (when it read on)."""
    full = _full_csv()
    prefix = full[: record["bytes"]]
    assert hashlib.sha256(prefix).hexdigest() == record["sha256"]
    if prefix:  # the header and whole rows
        assert prefix.endswith(b"\r\n") and prefix.count(b"\r\n") - 1 == record["rows"]
    if received is not None:
        assert received[: len(prefix)] == prefix


@contextlib.contextmanager
def _body_column_gone() -> Iterator[None]:
    """The next query that reads messages fails, in any process, until the block ends."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE messaging_message RENAME COLUMN body TO body_gone")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE messaging_message RENAME COLUMN body_gone TO body")


def _read_until(chunks: Iterator[bytes], size: int) -> bytes:
    received = b""
    while len(received) < size:
        received += next(chunks)
    return received


def _token(make_user) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_create(user=make_user('Manager'))[1]}"}


@pytest.mark.parametrize("pages", [0, 3])
@pytest.mark.parametrize("tier", TIERS)
def test_a_client_that_leaves_mid_stream_is_recorded(tier, pages, messages, make_user, tmp_path):
    """Gone after the first chunk, or after three pages' worth: the rows handed over by then
    (none while the first chunk was still being sent)."""
    headers = _token(make_user)
    with procfile_process(tier, tmp_path / f"{tier}.log") as (url, _):
        with httpx.stream(
            "GET", f"{url}/api/v1/messages/export?format=csv", headers=headers, timeout=60
        ) as response:
            assert response.status_code == 200
            received = _read_until(response.iter_raw(), max(1, pages * 2000 * ROW_BYTES))
            assert received.startswith(b"id,created_at,")
        # Leaving the block closed the connection with most of the export unread.
        record = _record("api")
    assert record["outcome"] == "client_disconnected" and record["error"] is None
    assert (pages - 1) * 2000 <= record["rows"] < TOTAL // 2, record
    assert record["filters"]["format"] == "csv"
    _assert_prefix(record)
    log = (tmp_path / f"{tier}.log").read_text()
    assert "StreamingHttpResponse must consume" not in log, log


@pytest.mark.parametrize("tier", TIERS)
def test_an_export_the_database_fails_mid_way_is_recorded_as_failed(
    tier, messages, make_user, tmp_path
):
    headers = _token(make_user)
    with (
        procfile_process(tier, tmp_path / f"{tier}.log") as (url, _),
        httpx.stream(
            "GET", f"{url}/api/v1/messages/export?format=csv", headers=headers, timeout=60
        ) as response,
    ):
        chunks = response.iter_raw()
        received = _read_until(chunks, 3 * 2000 * ROW_BYTES)
        # The server now waits for this reader, pages ahead of it at most.
        with _body_column_gone():
            try:
                for chunk in chunks:
                    received += chunk
                cut = False
            except httpx.RemoteProtocolError:  # no final chunk: an incomplete body
                cut = True
            record = _record("api")
    # granian's ASGI server closes the connection; its WSGI server ends the response as if
    # complete (and logs the error): there only the ledger record tells (docs/API.md).
    assert cut is (tier == "events")
    assert record["outcome"] == "failed", record
    assert record["error"] in {"OperationalError", "ProgrammingError"}, record
    assert 6000 <= record["rows"] < TOTAL, record
    assert len(received) == record["bytes"] < len(_full_csv())
    _assert_prefix(record, received)


@pytest.mark.parametrize("tier", TIERS)
def test_the_messages_page_export_link_is_recorded_however_it_ends(
    tier, messages, make_user, tmp_path
):
    browser = DjangoClient()
    manager = make_user("Manager")
    browser.force_login(manager)
    cookies = {settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value}
    with (
        procfile_process(tier, tmp_path / f"{tier}.log") as (url, _),
        httpx.Client(base_url=url, cookies=cookies, timeout=60) as http,
    ):
        page = http.get("/messages/")
        assert page.status_code == 200, page.text[:500]
        href = re.search(r'id="export-messages" href="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        href = href.replace("&amp;", "&")
        with http.stream("GET", href) as response:
            assert response.status_code == 200
            next(response.iter_raw())
        left = _record("ui")
        assert left["outcome"] == "client_disconnected" and left["rows"] < TOTAL
        AuditEntry.objects.filter(action="messages.exported").delete()
        whole = http.get(href)
        assert whole.status_code == 200
        done = _record("ui")
    assert done["outcome"] == "completed" and done["error"] is None
    assert done["rows"] == TOTAL and done["bytes"] == len(whole.content)
    assert done["sha256"] == hashlib.sha256(whole.content).hexdigest()
    assert AuditEntry.objects.get(action="messages.exported").actor_id == str(manager.id)


def _interruptible() -> None:
    """Ctrl-C as at a terminal: a suite started in the background (`make test &`) passes an
    ignored SIGINT down, and Python then raises no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _command(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "export_messages", "--format", "csv", *args],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_interruptible,
    )


def _pipe_chunks(process: subprocess.Popen[bytes]) -> Iterator[bytes]:
    assert process.stdout is not None
    while chunk := process.stdout.read1(65536):
        yield chunk


VIA_COMMAND = "manage.py export_messages"


@pytest.mark.parametrize(
    ("stop", "returncode", "outcome", "error"),
    [
        (signal.SIGINT, 130, "failed", "KeyboardInterrupt"),
        (signal.SIGTERM, 143, "failed", "Terminated"),
        ("close", 141, "client_disconnected", None),
        ("database", 1, "failed", {"OperationalError", "ProgrammingError"}),
    ],
)
def test_the_command_stopped_mid_way_is_recorded(messages, stop, returncode, outcome, error):
    process = _command()
    chunks = _pipe_chunks(process)
    received = _read_until(chunks, 3 * 2000 * ROW_BYTES)
    # The command is now blocked writing into the full pipe.
    with contextlib.ExitStack() as stack:
        if stop == "close":
            process.stdout.close()  # type: ignore[union-attr]
        elif stop == "database":
            stack.enter_context(_body_column_gone())
            received += b"".join(chunks)
        else:
            process.send_signal(stop)
            received += b"".join(chunks)
        assert process.wait(60) == returncode
        record = _record(VIA_COMMAND)
    stderr = process.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in stderr, stderr
    assert f"after {record['rows']} rows" in stderr, stderr
    assert record["outcome"] == outcome, record
    assert record["error"] in error if isinstance(error, set) else record["error"] == error
    assert 4000 <= record["rows"] < TOTAL, record
    _assert_prefix(record, None if stop == "close" else received)


@pytest.mark.parametrize(
    "target", ["/proc/clientdesk-export.csv", "/sys/clientdesk-export.csv", "missing/dir/x.csv"]
)
def test_an_unwritable_output_file_is_a_clear_error_and_a_failed_record(db, tmp_path, target):
    path = target if target.startswith("/") else str(tmp_path / target)
    with pytest.raises(CommandError) as raised:
        call_command("export_messages", "--format", "ndjson", "-o", path)
    assert raised.value.returncode == 1
    assert str(Path(path).parent) in str(raised.value)
    record = _record(VIA_COMMAND)
    assert record["outcome"] == "failed" and record["rows"] == 0
    assert record["error"] in {"PermissionError", "FileNotFoundError"}
    assert record["sha256"] == hashlib.sha256(b"").hexdigest()
    assert not Path(f"{path}.manifest.json").exists()


def test_a_completed_command_export_records_its_bytes(messages, tmp_path):
    target = tmp_path / "all.csv"
    call_command("export_messages", "--format", "csv", "-o", str(target))
    record = _record(VIA_COMMAND)
    data = target.read_bytes()
    assert record["outcome"] == "completed" and record["error"] is None
    assert (record["rows"], record["bytes"]) == (TOTAL, len(data))
    assert record["sha256"] == hashlib.sha256(data).hexdigest()


def test_filters_out_of_range_in_utc_or_odd_text_still_make_a_record(db, agent):
    """The record is written whatever the filters hold: a time whose UTC form is past year
    9999, text with NUL or a lone surrogate."""
    request = ExportRequest(
        format="csv\x00\ud800",
        since=datetime(1, 1, 1, tzinfo=UTC),
        until=datetime.fromisoformat("9999-12-31T23:59:59-05:00"),
        as_of=datetime.now(UTC),
        client=None,
        sender=None,
        direction="in\udcff",
    )
    export_record(actor=agent, request=request, result=Result(), via="api")
    filters = _record("api")["filters"]
    assert filters["until"] == "9999-12-31T23:59:59-05:00"
    assert filters["since"] == "0001-01-01T00:00:00Z"
    assert filters["format"] == "csv\ufffd?" and filters["direction"] == "in?"


def test_a_chunk_counts_once_the_reader_comes_back_for_the_next(db, agent, make_client):
    """A chunk handed to a reader that then goes away (the server's write failed, the client
    left) is not counted: the record holds what the reader took."""
    client = make_client()
    write_texts(agent, client, ["ok"] * 3)
    request = ExportRequest(
        format="ndjson", since=None, until=None, as_of=datetime.now(UTC), client=None, sender=None
    )
    stream = export_run(actor=agent, request=request, via="api")
    assert next(stream).count(b"\n") == 3
    stream.close()  # as a server does when its client leaves
    record = _record("api")
    assert record["outcome"] == "client_disconnected"
    assert (record["rows"], record["bytes"]) == (0, 0)
    AuditEntry.objects.filter(action="messages.exported").delete()
    data = b"".join(export_run(actor=agent, request=request, via="api"))
    record = _record("api")
    assert (record["outcome"], record["rows"], record["bytes"]) == ("completed", 3, len(data))


def test_the_audit_page_says_how_an_export_ended(db, agent):
    request = ExportRequest(
        format="csv", since=None, until=None, as_of=datetime.now(UTC), client=None, sender=None
    )
    for via, error in [("api", ZeroDivisionError), ("ui", GeneratorExit), ("cli", None)]:
        recorded = export_recorded(actor=agent, request=request, result=Result(), via=via)
        if error is None:
            with recorded:
                pass
        else:
            with pytest.raises(error), recorded:
                raise error
    audit_sequence()
    said = [
        strip_tags(str(s)) for s in record_sentences(list(AuditRecord.objects.order_by("sequence")))
    ]
    assert said[-3:] == [
        "Alex Agent exported 0 messages as csv (api); it failed (ZeroDivisionError)",
        "Alex Agent exported 0 messages as csv (ui); the client left before the end",
        "Alex Agent exported 0 messages as csv (cli)",
    ]
