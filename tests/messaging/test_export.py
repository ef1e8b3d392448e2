"""Export of message logs: golden files for both formats, formula cells, replies, filters, the
empty result, bad flags, the manifest and its checkpoint, the API and its ledger record, and
memory that stays flat at 100k rows."""

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from clientdesk.audit.models import AuditEntry, AuditRecord
from clientdesk.audit.services import audit_sequence
from clientdesk.audit.signing import current_verifier
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.export import _csv_cell
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from clientdesk.portal.services import portal_reply_create
from tests.audit import merkle_reference as ref

pytestmark = pytest.mark.django_db
GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
BODIES = [
    'Hello, "Zoë"\nsecond line',
    '=HYPERLINK("http://evil.example","click")',
    "+44 20 7946 0000",
    "-1+2",
    "@SUM(A1)",
    "\tstarts with a tab",
    "\rstarts with CR",
    "<script>alert(1)</script> ✓",
]


def _send(sender, client, body) -> Message:
    result = message_send(
        sender=sender,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    return Message.objects.get(pk=result.message_id)


@pytest.fixture
def conversation(agent, make_client):
    """Eight messages from the agent to one client at fixed times, and the client's reply."""
    client = make_client(external_id="=EXT-1", first_name="Zoë", last_name="Müller")
    messages = [_send(agent, client, body) for body in BODIES]
    reply = portal_reply_create(
        client=client,
        body="Thanks! -- Zoë",
        idempotency_key="reply-1",
        meta=RequestMeta(),
        in_reply_to=messages[0].id,
    )
    messages.append(reply.message)
    for n, message in enumerate(messages):
        Message.objects.filter(pk=message.pk).update(created_at=T0 + timedelta(minutes=n))
    Message.objects.filter(pk=messages[0].pk).update(read_at=T0 + timedelta(hours=1))
    return client, messages


def _export(*args: str) -> str:
    out = io.StringIO()
    call_command("export_messages", *args, stdout=out)
    return out.getvalue()


def _placeholders(text: str, agent, client, messages) -> str:
    """Ids are random; the golden files name them by role."""
    text = text.replace(str(client.id), "<client>").replace(str(agent.id), "<agent>")
    for n, message in enumerate(messages):
        text = text.replace(str(message.id), f"<message-{n}>")
    return text


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_export_matches_the_golden_file(conversation, agent, fmt):
    client, messages = conversation
    output = _placeholders(_export("--format", fmt), agent, client, messages)
    golden = GOLDEN / f"export.{fmt}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(output.encode())
    assert output == golden.read_bytes().decode()


def test_csv_neutralises_formula_cells_and_keeps_the_rest(conversation):
    import csv

    rows = list(csv.DictReader(io.StringIO(_export("--format", "csv"), newline="")))
    bodies = [row["body"] for row in rows]
    assert bodies[1].startswith("'=HYPERLINK(")
    assert bodies[2:6] == ["'+44 20 7946 0000", "'-1+2", "'@SUM(A1)", "'\tstarts with a tab"]
    # Sending turns a lone CR into a line break: a cell that starts with one is neutralised too.
    assert bodies[6] == "'\nstarts with CR"
    assert _csv_cell("\rcmd") == "'\rcmd" and _csv_cell("a=b") == "a=b"
    assert bodies[0] == BODIES[0] and bodies[7] == BODIES[7]
    assert {row["client_external_id"] for row in rows} == {"'=EXT-1"}
    # NDJSON is data, not a spreadsheet: the exact text.
    lines = _export("--format", "ndjson").splitlines()
    assert json.loads(lines[1])["body"] == BODIES[1]


def test_replies_are_exported_in_both_directions(conversation):
    rows = [json.loads(line) for line in _export("--format", "ndjson").splitlines()]
    assert [r["direction"] for r in rows] == ["out"] * 8 + ["in"]
    assert rows[-1]["sender_id"] is None and rows[-1]["body"] == "Thanks! -- Zoë"
    assert rows[0]["read_at"] == "2026-11-02T10:30:00Z"
    assert rows[0]["created_at"] == "2026-11-02T09:30:00Z"
    # Ours expect no reply; the client's waits for our response, as every client message does.
    assert [r["reply_state"] for r in rows] == ["none"] * 8 + ["awaiting"]


def test_direction_filter_exports_replies_or_sent_messages_only(conversation, make_user, api_for):
    lines = _export("--format", "ndjson", "--direction", "in").splitlines()
    replies = [json.loads(x) for x in lines]
    assert [r["body"] for r in replies] == ["Thanks! -- Zoë"]
    sent = _export("--format", "ndjson", "--direction", "out").splitlines()
    assert len(sent) == 8 and all(json.loads(x)["direction"] == "out" for x in sent)
    answer = api_for(make_user("Manager")).get(
        "/api/v1/messages/export", {"format": "ndjson", "direction": "in"}
    )
    assert answer.status_code == 200
    lines = b"".join(answer.streaming_content).splitlines()
    assert [json.loads(x)["direction"] for x in lines] == ["in"]
    record = AuditEntry.objects.filter(action="messages.exported").latest("created_at")
    assert record.data["filters"]["direction"] == "in"


def test_filters(conversation, agent, make_client, make_user):
    other = make_client(external_id="OTHER")
    other_agent = make_user("Agent", username="other-agent")
    _send(other_agent, other, "elsewhere")

    def ids(*args):
        return [
            json.loads(line)["body"] for line in _export("--format", "ndjson", *args).splitlines()
        ]

    assert ids("--client", "OTHER") == ["elsewhere"]
    assert ids("--client", str(other.id)) == ["elsewhere"]
    assert ids("--sender", "other-agent") == ["elsewhere"]
    assert len(ids("--client", "=EXT-1")) == 9
    assert ids("--since", "2026-11-02T09:32:00Z", "--until", "2026-11-02T09:34:00Z") == BODIES[2:4]
    assert len(ids("--until", "2026-11-02")) == 0
    assert len(ids("--since", "2026-11-02")) == 10


def test_empty_result(db):
    assert _export("--format", "csv") == (
        "id,created_at,direction,client_id,client_external_id,client_name,sender_id,sender_name,"
        "body,template,template_version,template_edited,read_at,reply_state,delivery_status,"
        "attachments\r\n"
    )
    assert _export("--format", "ndjson") == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client", "nobody"], "no client with id or external id 'nobody'"),
        (["--sender", "nobody"], "no user named 'nobody'"),
        (["--since", "2026-12-01", "--until", "2026-11-01"], "since is after until"),
        (["--since", "yesterday"], r"since \('yesterday'\) must be an ISO 8601 date or time"),
        (["--until", "2026-13-45"], r"until \('2026-13-45'\) must be an ISO 8601 date or time"),
        (["--until", "9999-12-31T23:59:59-05:00"], r"until \('9999-12-31T23:59:59-05:00'\)"),
        (["--since", "0001-01-01T00:00:00+01:00"], r"between 0002-01-01 and 9998-12-31 UTC"),
        (["--since", "+275760-09-13"], r"since \('\+275760-09-13'\) must be an ISO 8601"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message_and_no_file(db, tmp_path, args, message):
    target = tmp_path / "out.csv"
    with pytest.raises(CommandError, match=message) as raised:
        _export("--format", "csv", "-o", str(target), *args)
    assert raised.value.returncode == 2
    assert list(tmp_path.iterdir()) == []
    assert AuditEntry.objects.count() == 0


def test_a_bad_format_exits_2_from_the_real_command(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "export_messages",
            "--format",
            "xlsx",
            "-o",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice: 'xlsx'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_file_and_manifest_with_a_checkpoint_that_covers_the_export_record(conversation, tmp_path):
    target = tmp_path / "november.csv"
    _export("--format", "csv", "-o", str(target), "--since", "2026-11-01", "--until", "2026-12-01")
    data = target.read_bytes()
    manifest = json.loads((tmp_path / "november.csv.manifest.json").read_text())
    assert manifest["rows"] == 9
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    record = AuditRecord.objects.get(action="messages.exported")
    assert record.data["sha256"] == manifest["sha256"] and record.data["rows"] == 9
    assert record.data["filters"]["since"] == "2026-11-01T00:00:00Z"
    assert record.data["filters"]["until"] == "2026-12-01T00:00:00Z"
    # The manifest's checkpoint: signed by the published key, over a tree holding that record.
    body, _, signature = manifest["checkpoint"].partition("\n\n")
    _, size, root = body.split("\n")
    raw = base64.b64decode(signature.split(" ")[-1])
    Ed25519PublicKey.from_public_bytes(current_verifier().public_key).verify(
        raw[4:], (body + "\n").encode()
    )
    leaves = [
        bytes.fromhex(h)
        for h in AuditRecord.objects.order_by("sequence").values_list("hash", flat=True)
    ]
    assert int(size) == len(leaves) >= record.sequence
    assert base64.b64decode(root) == ref.mth(leaves)


def test_api_streams_the_same_bytes_and_records_the_export(conversation, agent, make_user, api_for):
    client, messages = conversation
    manager = make_user("Manager")
    response = api_for(manager).get(
        "/api/v1/messages/export", {"format": "csv", "client": "=EXT-1"}
    )
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="messages-')
    data = b"".join(response.streaming_content)
    assert (
        _placeholders(data.decode(), agent, client, messages)
        == (GOLDEN / "export.csv").read_bytes().decode()
    )
    audit_sequence()
    record = AuditRecord.objects.get(action="messages.exported")
    assert record.actor_id == str(manager.id)
    assert record.data["sha256"] == hashlib.sha256(data).hexdigest()
    assert record.data["rows"] == 9
    assert record.data["filters"]["client"] == str(client.id)
    ndjson = api_for(manager).get("/api/v1/messages/export", {"format": "ndjson"})
    assert ndjson["Content-Type"] == "application/x-ndjson"
    assert len(b"".join(ndjson.streaming_content).splitlines()) == 9


@pytest.mark.parametrize("role", [None, "Viewer", "Agent"])
def test_api_needs_export_permission(make_user, api_for, role):
    response = api_for(make_user(role)).get("/api/v1/messages/export", {"format": "csv"})
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert AuditEntry.objects.filter(action="messages.exported").count() == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "xlsx"}, "format"),
        ({}, "format"),
        ({"format": "csv", "since": "soon"}, "since"),
        ({"format": "csv", "client": "\x00"}, "client"),
        ({"format": "csv", "sender": "ghost"}, "sender"),
        ({"format": "csv", "direction": "sideways"}, "direction"),
    ],
)
def test_api_bad_parameters_are_problems_naming_the_field(make_user, api_for, params, field):
    response = api_for(make_user("Manager")).get("/api/v1/messages/export", params)
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]


_RSS_SCRIPT = """
import re, sys
import django
django.setup()
from django.core.management import call_command
call_command("export_messages", "--format", sys.argv[1], "-o", sys.argv[2])
# VmHWM is this program's own peak. (ru_maxrss would not do: Linux carries the peak of the
# process that started it across exec, here the test process holding 100k model objects.)
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
"""


def _peak_rss_mb(fmt: str, target: Path) -> int:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    else:
        url = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "clientdesk.settings"}
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, fmt, str(target)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return int(proc.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_memory_stays_flat_from_1k_to_50k_rows(make_client, agent, tmp_path):
    client = make_client()
    body = "x" * 200

    def add(n: int, start: int) -> None:
        Message.objects.bulk_create(
            [
                Message(
                    client=client,
                    sender=agent,
                    body=f"{body} {i}",
                    source=body,
                    created_at=T0 + timedelta(seconds=i),
                )
                for i in range(start, start + n)
            ],
            batch_size=5000,
        )

    add(1000, 0)
    small = _peak_rss_mb("csv", tmp_path / "small.csv")
    add(49_000, 1000)
    large = _peak_rss_mb("csv", tmp_path / "large.csv")
    rows = (tmp_path / "large.csv").read_bytes().count(b"\r\n") - 1
    assert rows == 50_000
    print(f"peak RSS: {small} MB at 1k rows, {large} MB at 50k rows")
    # 50x the rows (about 15 MB of CSV; held as rows, well over 50 MB) may not cost more than a
    # few chunks' worth.
    assert large - small < 25, (small, large)


def _open_transactions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_client_leaving_mid_stream_leaves_no_open_transaction(
    make_client, make_user, agent, api_for, asgi_server
):
    import socket
    import time

    from clientdesk.accounts.services import api_token_create

    client = make_client()
    Message.objects.bulk_create(
        [
            Message(
                client=client,
                sender=agent,
                body="y" * 300,
                source="y",
                created_at=T0 + timedelta(seconds=i),
            )
            for i in range(20_000)
        ],
        batch_size=5000,
    )
    _, token = api_token_create(user=make_user("Manager"))
    with socket.create_connection(("127.0.0.1", asgi_server), timeout=20) as sock:
        sock.sendall(
            b"GET /api/v1/messages/export?format=csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        received = b""
        while len(received) < 100_000:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the stream early"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")
    # Gone after about 300 of the 6,000 KB. The server notices on its next write.
    deadline = time.monotonic() + 15
    while True:
        open_now = _open_transactions() if connection.vendor == "postgresql" else 0
        if open_now == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert open_now == 0
    # Recorded as left by its reader, with what was handed over before.
    deadline = time.monotonic() + 30
    while not (record := AuditEntry.objects.filter(action="messages.exported").first()):
        assert time.monotonic() < deadline, "no ledger record of the abandoned export"
        time.sleep(0.2)
    assert record.data["outcome"] == "client_disconnected"
    # Gone within the first chunk: none of its rows count (tests/messaging/test_export_recording).
    assert record.data["rows"] < 20_000
    # And the database takes writes at once (on SQLite: no write lock left behind).
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clients_client SET first_name = first_name WHERE id = %s",
            [client.id.hex if connection.vendor == "sqlite" else client.id],
        )
