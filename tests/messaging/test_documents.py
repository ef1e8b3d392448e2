"""Messages with files and document requests: the staff send and the client's reply through the
real APIs (uploads through the real upload endpoints), the reply clock that waits for every
requested document, what a hostile or mistaken request is refused, the webhook's signed links,
the ledger and the export."""

import csv
import hashlib
import io
import json
import struct
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from clientdesk.audit.models import ActivityEvent, AuditEntry
from clientdesk.delivery.models import Delivery
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.files.models import StoredFile
from clientdesk.followup.models import Conversation
from clientdesk.messaging.models import DocumentRequest, Message, MessageAttachment
from tests.racing import race

pytestmark = pytest.mark.django_db


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (what a phone's photo is, smaller)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(text: str = "utility bill") -> bytes:
    """A small, valid one-page PDF."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
    ]
    stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def upload(api: APIClient, url: str, name: str, data: bytes) -> dict[str, Any]:
    response = api.post(url, {"file": _named(name, data)}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def _named(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def staff_upload(api: APIClient, name: str, data: bytes) -> dict[str, Any]:
    return upload(api, "/api/v1/files", name, data)


def client_upload(api: APIClient, name: str, data: bytes) -> dict[str, Any]:
    return upload(api, "/portal/api/v1/files", name, data)


def send(api: APIClient, client: Any, body: dict[str, Any], key: str | None = None) -> Any:
    return api.post(
        f"/api/v1/clients/{client.id}/messages",
        body,
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
    )


def reply(api: APIClient, body: dict[str, Any], key: str | None = None) -> Any:
    return api.post(
        "/portal/api/v1/messages",
        {"body": "", **body},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
    )


def problem(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


KYC = [{"label": "Passport"}, {"label": "Utility bill"}]


@pytest.fixture
def staff(agent: Any, api_for: Callable[[Any], APIClient]) -> APIClient:
    return api_for(agent)


@pytest.fixture
def kyc(staff: APIClient, client_obj: Any) -> dict[str, Any]:
    """A message asking `client_obj` for two documents, with a staff file attached."""
    guide = staff_upload(staff, "how-to-scan.pdf", pdf_bytes("how to scan"))
    response = send(
        staff,
        client_obj,
        {"body": "Please send these", "attachments": [guide["id"]], "document_requests": KYC},
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_send_carries_attachments_and_document_requests(staff, client_obj, kyc, portal_for):
    guide = kyc["attachments"][0]
    assert guide["name"] == "how-to-scan.pdf"
    assert guide["content_type"] == "application/pdf"
    assert guide["sha256"] == hashlib.sha256(pdf_bytes("how to scan")).hexdigest()
    assert set(guide) == {"id", "name", "size", "content_type", "sha256"}
    assert [(r["label"], r["status"], r["file"]) for r in kyc["document_requests"]] == [
        ("Passport", "open", None),
        ("Utility bill", "open", None),
    ]
    # Asking for documents expects a reply.
    assert kyc["expects_reply"] is True and kyc["reply_state"] == "awaiting"
    # The client's copy of the staff upload: a row of its own over the same bytes.
    bound = StoredFile.objects.get(pk=guide["id"])
    assert bound.client_id == client_obj.id and bound.attached_at is not None

    listed = staff.get(f"/api/v1/clients/{client_obj.id}/messages").json()["results"][0]
    assert listed["attachments"] == kyc["attachments"]
    assert listed["document_requests"] == kyc["document_requests"]
    detail = staff.get(f"/api/v1/messages/{kyc['id']}").json()
    assert detail["document_requests"] == kyc["document_requests"]
    inbox = portal_for(client_obj).get("/portal/api/v1/messages").json()["items"][0]
    assert inbox["attachments"] == kyc["attachments"]
    assert inbox["document_requests"] == kyc["document_requests"]
    waiting = staff.get("/api/v1/messages?documents=open").json()["results"]
    assert [m["id"] for m in waiting] == [kyc["id"]]


def test_one_of_two_documents_keeps_the_clock_open_the_second_answers_it(
    staff, client_obj, kyc, portal_for
):
    portal = portal_for(client_obj)
    passport, bill = kyc["document_requests"]
    photo = client_upload(portal, "passport.png", png_bytes())
    first = reply(portal, {"fulfils": {passport["id"]: photo["id"]}})
    assert first.status_code == 201, first.content
    assert [a["sha256"] for a in first.json()["attachments"]] == [photo["sha256"]]

    message = staff.get(f"/api/v1/messages/{kyc['id']}").json()
    assert message["reply_state"] == "awaiting"
    assert [(r["label"], r["status"]) for r in message["document_requests"]] == [
        ("Passport", "received"),
        ("Utility bill", "open"),
    ]
    assert message["document_requests"][0]["file"]["sha256"] == photo["sha256"]
    assert staff.get("/api/v1/messages?documents=open").json()["results"][0]["id"] == kyc["id"]
    conversation = Conversation.objects.get(pk=client_obj.id)
    assert conversation.reply_due_at is not None
    # A reply answering no request does not answer the message either.
    assert reply(portal, {"body": "Working on the bill"}).status_code == 201
    assert Message.objects.get(pk=kyc["id"]).reply_state == "awaiting"

    scan = client_upload(portal, "bill.pdf", pdf_bytes())
    second = reply(portal, {"body": "Here it is", "fulfils": {bill["id"]: scan["id"]}})
    assert second.status_code == 201, second.content
    answered = Message.objects.get(pk=kyc["id"])
    assert answered.reply_state == "answered"
    assert staff.get("/api/v1/messages?documents=open").json()["results"] == []
    done = staff.get("/api/v1/messages?documents=received").json()["results"]
    assert [m["id"] for m in done] == [kyc["id"]]
    assert Conversation.objects.get(pk=client_obj.id).reply_due_at is None


def _nothing_written(before: dict[str, int]) -> None:
    assert _counts() == before


def _counts() -> dict[str, int]:
    return {
        "messages": Message.objects.count(),
        "attachments": MessageAttachment.objects.count(),
        "received": DocumentRequest.objects.filter(status="received").count(),
        "requests": DocumentRequest.objects.count(),
        "ledger": AuditEntry.objects.filter(action__startswith="message.").count(),
    }


def test_hostile_replies_are_refused_and_write_nothing(
    staff, client_obj, kyc, portal_for, make_client
):
    portal = portal_for(client_obj)
    passport, bill = kyc["document_requests"]
    mine = client_upload(portal, "passport.png", png_bytes())
    other_client = make_client()
    other_portal = portal_for(other_client)
    theirs = client_upload(other_portal, "theirs.png", png_bytes(3, 3))
    foreign = send(staff, other_client, {"body": "Yours", "document_requests": [{"label": "ID"}]})
    foreign_request = foreign.json()["document_requests"][0]["id"]
    staff_file = staff_upload(staff, "internal.pdf", pdf_bytes("internal"))
    before = _counts()

    refusals = {
        "another client's request": {"fulfils": {foreign_request: mine["id"]}},
        "an unknown request": {"fulfils": {str(uuid.uuid4()): mine["id"]}},
        "a request id that is no id": {"fulfils": {"<script>": mine["id"]}},
        "another client's file": {"fulfils": {passport["id"]: theirs["id"]}},
        "another client's file attached": {"body": "x", "attachments": [theirs["id"]]},
        "a staff file": {"body": "x", "attachments": [staff_file["id"]]},
        "a staff file answering": {"fulfils": {passport["id"]: staff_file["id"]}},
        "a file the message carries": {"fulfils": {passport["id"]: kyc["attachments"][0]["id"]}},
        "one file for two requests": {
            "fulfils": {passport["id"]: mine["id"], bill["id"]: mine["id"]}
        },
        "six files": {"body": "x", "attachments": [mine["id"]] * 6},
        "no text and no files": {"body": "  "},
        "fulfils not an object": {"fulfils": [passport["id"]]},
    }
    for name, body in refusals.items():
        answer = problem(reply(portal, body))
        assert answer["detail"], name
        _nothing_written(before)

    assert reply(portal, {"fulfils": {passport["id"]: mine["id"]}}).status_code == 201
    again = client_upload(portal, "passport-again.png", png_bytes(4, 4))
    before = _counts()
    twice = problem(reply(portal, {"fulfils": {passport["id"]: again["id"]}}))
    assert "already" in twice["detail"]
    _nothing_written(before)


def test_staff_sends_that_are_refused_write_nothing(staff, client_obj, agent, make_user, api_for):
    colleague = api_for(make_user("Agent"))
    theirs = staff_upload(colleague, "theirs.pdf", pdf_bytes("colleague"))
    files = [staff_upload(staff, f"f{n}.png", png_bytes(n + 1, 1)) for n in range(6)]
    before = _counts()
    refusals = {
        "six attachments": {"body": "x", "attachments": [f["id"] for f in files]},
        "a colleague's upload": {"body": "x", "attachments": [theirs["id"]]},
        "an unknown file": {"body": "x", "attachments": [str(uuid.uuid4())]},
        "the same file twice": {"body": "x", "attachments": [files[0]["id"]] * 2},
        "eleven requests": {
            "body": "x",
            "document_requests": [{"label": f"D{n}"} for n in range(11)],
        },
        "a long label": {"body": "x", "document_requests": [{"label": "L" * 201}]},
        "a blank label": {"body": "x", "document_requests": [{"label": "  "}]},
        "a label with NUL": {"body": "x", "document_requests": [{"label": "a\x00b"}]},
        "requests without a reply": {
            "body": "x",
            "expects_reply": False,
            "document_requests": [{"label": "ID"}],
        },
    }
    for name, body in refusals.items():
        answer = problem(send(staff, client_obj, body))
        assert answer["detail"], name
        _nothing_written(before)
    # Markup in a label is text: stored and shown as typed.
    label = '<img src=x onerror="alert(1)">'
    sent = send(staff, client_obj, {"body": "x", "document_requests": [{"label": label}]})
    assert sent.json()["document_requests"][0]["label"] == label


@pytest.mark.django_db(transaction=True)
def test_racing_replies_receive_a_request_once(client_obj, kyc, portal_for):
    portal = portal_for(client_obj)
    passport = kyc["document_requests"][0]["id"]
    uploads = [client_upload(portal, f"p{n}.png", png_bytes(n + 1, 2)) for n in range(4)]
    tokens = [portal.token for _ in uploads]

    def act(n: int) -> int:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens[n]}")
        return reply(api, {"fulfils": {passport: uploads[n]["id"]}}).status_code

    results, errors = race(4, act)
    assert not errors
    assert sorted(results) == [201, 422, 422, 422]
    received = DocumentRequest.objects.get(pk=passport)
    assert received.status == "received"
    assert Message.objects.filter(direction="in").count() == 1


def test_webhook_carries_a_signed_link_that_downloads(
    staff, client_obj, administrator, settings, client
):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    settings.PUBLIC_URL = "https://desk.example.com"
    endpoint_configure(user=administrator, url="http://127.0.0.1:9/hook", enabled=True)
    data = png_bytes(5, 5)
    photo = staff_upload(staff, "photo.png", data)
    sent = send(staff, client_obj, {"body": "A photo", "attachments": [photo["id"]]}).json()
    payload = Delivery.objects.get(subject_id=sent["id"], channel="webhook").payload
    (attached,) = payload["data"]["message"]["attachments"]
    assert {k: attached[k] for k in ("id", "name", "size", "content_type", "sha256")} == (
        sent["attachments"][0]
    )
    url = urlsplit(attached["url"])
    assert (url.scheme, url.netloc) == ("https", "desk.example.com")
    downloaded = client.get(url.path)
    assert downloaded.status_code == 200
    assert b"".join(downloaded.streaming_content) == data
    token = url.path.rsplit("/", 1)[1]
    tampered = client.get(
        url.path.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    )
    assert tampered.status_code in (403, 404, 410)


@pytest.fixture
def administrator(make_user: Callable[..., Any]) -> Any:
    return make_user("Administrator")


def test_the_ledger_and_timeline_hold_each_file_and_hash(client_obj, kyc, portal_for):
    sent = AuditEntry.objects.get(action="message.sent", object_id=kyc["id"])
    guide = kyc["attachments"][0]
    assert sent.data["attachments"] == [
        {k: guide[k] for k in ("name", "size", "content_type", "sha256")}
    ]
    assert [r["label"] for r in sent.data["document_requests"]] == ["Passport", "Utility bill"]
    portal = portal_for(client_obj)
    photo = client_upload(portal, "passport.png", png_bytes())
    passport = kyc["document_requests"][0]["id"]
    answer = reply(portal, {"fulfils": {passport: photo["id"]}}).json()
    received = AuditEntry.objects.get(action="message.received", object_id=answer["id"])
    assert received.data["attachments"][0]["sha256"] == photo["sha256"]
    assert received.data["fulfils"] == {passport: photo["sha256"]}
    timeline = ActivityEvent.objects.get(subject_id=answer["id"])
    assert timeline.data["attachments"][0]["name"] == "passport.png"


def test_export_lists_attachments_and_copies_them_with_their_hashes(
    client_obj, kyc, portal_for, tmp_path: Path
):
    portal = portal_for(client_obj)
    photo = client_upload(portal, "passport.png", png_bytes())
    reply(portal, {"fulfils": {kyc["document_requests"][0]["id"]: photo["id"]}})
    guide = kyc["attachments"][0]

    out = io.StringIO()
    call_command("export_messages", "--format", "csv", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert rows[0]["attachments"] == f"how-to-scan.pdf {guide['sha256']}"
    assert rows[1]["attachments"] == f"passport.png {photo['sha256']}"
    out = io.StringIO()
    call_command("export_messages", "--format", "ndjson", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[1]["attachments"] == [{"name": "passport.png", "sha256": photo["sha256"]}]

    target = tmp_path / "export.csv"
    files = tmp_path / "files"
    call_command(
        "export_messages", "--format", "csv", "-o", str(target), "--with-files", str(files)
    )
    manifest = json.loads((tmp_path / "export.csv.manifest.json").read_text())
    listed = {f["sha256"]: f for f in manifest["files"]}
    assert set(listed) == {guide["sha256"], photo["sha256"]}
    for sha256, entry in listed.items():
        copied = (tmp_path / entry["path"]).read_bytes()
        assert hashlib.sha256(copied).hexdigest() == sha256
        assert entry["size"] == len(copied)
    assert listed[photo["sha256"]]["names"] == ["passport.png"]


def test_a_kyc_template_asks_for_its_documents_every_time(staff, client_obj, make_user, api_for):
    manager = api_for(make_user("Manager"))
    created = manager.post(
        "/api/v1/templates",
        {
            "name": "KYC",
            "body": "Hello {{firstName}}, we need three documents.",
            "document_requests": [
                {"label": "Passport"},
                {"label": "Utility bill"},
                {"label": "Selfie"},
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert [r["label"] for r in created.json()["document_requests"]] == [
        "Passport",
        "Utility bill",
        "Selfie",
    ]
    template_id = created.json()["id"]
    for _ in range(2):
        sent = send(staff, client_obj, {"template_id": template_id})
        assert sent.status_code == 201, sent.content
        assert [r["label"] for r in sent.json()["document_requests"]] == [
            "Passport",
            "Utility bill",
            "Selfie",
        ]
        assert sent.json()["reply_state"] == "awaiting"
    # Asked explicitly, the send's own list wins; a template change makes a new version.
    own = send(staff, client_obj, {"template_id": template_id, "document_requests": []})
    assert own.json()["document_requests"] == []
    changed = manager.patch(
        f"/api/v1/templates/{template_id}",
        {"document_requests": [{"label": "Passport"}]},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["version"] == 2
    assert changed.json()["document_requests"] == [{"label": "Passport"}]
    refused = manager.patch(
        f"/api/v1/templates/{template_id}",
        {"document_requests": [{"label": "x"}] * 11},
        format="json",
    )
    problem(refused)


def test_the_messages_page_lists_documents_pending_with_the_clock(
    staff, client_obj, kyc, portal_for, agent, client
):
    client.force_login(agent)
    page = client.get("/messages/?view=documents")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Documents pending" in text and client_obj.full_name in text
    assert "Awaiting documents · due in" in text
    assert "Passport: Waiting for the client" in text
    portal = portal_for(client_obj)
    for request, name in zip(kyc["document_requests"], ("a.png", "b.png"), strict=True):
        upload_ = client_upload(portal, name, png_bytes(len(name), 2))
        assert reply(portal, {"fulfils": {request["id"]: upload_["id"]}}).status_code == 201
    text = client.get("/messages/?view=documents").content.decode()
    assert "No documents are waiting" in text
    assert client.get("/messages/?view=documents&cursor=%5B%5B").status_code == 422


def test_the_activity_log_shows_files_and_requests_as_text(
    staff, client_obj, agent, client, portal_for
):
    hostile = '<img src=x onerror="alert(1)">.png'
    photo = staff_upload(staff, hostile, png_bytes())
    sent = send(
        staff,
        client_obj,
        {
            "body": "See attached",
            "attachments": [photo["id"]],
            "document_requests": [{"label": "<b>Passport</b>"}],
        },
    )
    assert sent.status_code == 201, sent.content
    client.force_login(agent)
    page = client.get(f"/clients/{client_obj.id}/activity/").content.decode()
    assert photo["sha256"][:12] in page
    assert "Asks for: &lt;b&gt;Passport&lt;/b&gt;" in page
    assert "<img src=x" not in page and "<b>Passport</b>" not in page


def test_a_batch_with_files_writes_a_statement_per_kind_not_per_message(agent, staff, make_client):
    """The writer's batch (a broadcast's) binds, attaches and asks in a few statements whatever
    its size: only SQLite's 999-value limit splits an insert."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clientdesk.core.request_meta import RequestMeta
    from clientdesk.messaging.models import Direction
    from clientdesk.messaging.services.documents import FilesToWrite, attachments_check
    from clientdesk.messaging.services.writing import MessageWrite, messages_write

    leaflet = staff_upload(staff, "leaflet.pdf", pdf_bytes("leaflet"))
    (file,) = attachments_check([leaflet["id"]], user=agent)
    shapes = []
    for count in (3, 60):
        writes = [
            MessageWrite(
                client=make_client(),
                direction=Direction.OUT,
                sender=agent,
                body="Our leaflet",
                meta=RequestMeta(),
                files=FilesToWrite(attachments=(file,), document_requests=("Passport", "Bill")),
            )
            for _ in range(count)
        ]
        with CaptureQueriesContext(connection) as captured:
            messages_write(writes=writes)
        shape: dict[str, int] = {}
        for query in captured.captured_queries:
            sql = query["sql"]
            verb = sql.split(None, 1)[0].upper()
            table = re.search(r'(?:INTO|FROM|UPDATE)\s+"?(\w+)"?', sql)
            key = f"{verb} {table.group(1) if table else ''}"
            shape[key] = shape.get(key, 0) + 1
        shapes.append(shape)
    small, large = shapes
    others = [{k: v for k, v in s.items() if not k.startswith("INSERT")} for s in (small, large)]
    assert others[0] == others[1]
    for table in ("files_storedfile", "messaging_messageattachment", "messaging_documentrequest"):
        assert small[f"INSERT {table}"] == 1
        if connection.vendor == "postgresql":
            assert large[f"INSERT {table}"] == 1, table
        else:
            assert large[f"INSERT {table}"] <= 2, table
    assert MessageAttachment.objects.count() == 63
    assert DocumentRequest.objects.count() == 126
