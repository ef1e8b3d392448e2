"""A broadcast's files: each recipient's message carries its own copy of the same bytes; a
file that is not the creator's own upload is refused before anything is stored."""

import uuid

import pytest

from clientdesk.audit.models import AuditEntry
from clientdesk.files.models import StoredFile
from clientdesk.messaging.models import BroadcastFile, Message, MessageAttachment
from clientdesk.outreach.models import Broadcast
from tests.messaging.test_documents import pdf_bytes, staff_upload
from tests.outreach.conftest import run_batches

pytestmark = pytest.mark.django_db


def post(api, data, key=None):
    return api.post(
        "/api/v1/broadcasts", data, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4())
    )


def test_each_recipient_gets_its_own_copy_of_the_files(manager, many_clients, api_for):
    clients = many_clients(4)
    api = api_for(manager)
    leaflet = staff_upload(api, "leaflet.pdf", pdf_bytes("new rates"))
    response = post(
        api,
        {
            "audience": {"client_ids": [str(c.id) for c in clients]},
            "body": "Our new rates, {{firstName}}",
            "category": "service",
            "attachments": [leaflet["id"]],
        },
    )
    assert response.status_code == 202, response.content
    broadcast = Broadcast.objects.get()
    created = AuditEntry.objects.get(action="broadcast.created")
    assert created.data["attachments"][0]["sha256"] == leaflet["sha256"]
    run_batches()
    messages = Message.objects.filter(broadcast_id=broadcast.id)
    assert messages.count() == 4
    rows = MessageAttachment.objects.filter(message__in=messages).select_related("file", "message")
    assert len(rows) == 4
    # One row per recipient, each that recipient's, all over the same bytes.
    assert {r.file.client_id for r in rows} == {c.id for c in clients}
    assert {r.file.client_id for r in rows} == {r.message.client_id for r in rows}
    assert {r.file.sha256 for r in rows} == {leaflet["sha256"]}
    assert len({r.file_id for r in rows}) == 4
    for message in messages:
        sent = AuditEntry.objects.get(action="message.sent", object_id=message.id)
        assert sent.data["attachments"][0]["sha256"] == leaflet["sha256"]
    listed = api.get(f"/api/v1/clients/{clients[0].id}/messages").json()["results"][0]
    assert listed["attachments"][0]["name"] == "leaflet.pdf"


def test_a_file_that_is_not_yours_is_refused_and_nothing_is_stored(
    manager, many_clients, make_user, api_for
):
    clients = many_clients(2)
    theirs = staff_upload(api_for(make_user("Agent")), "theirs.pdf", pdf_bytes("theirs"))
    for attachments in ([theirs["id"]], [str(uuid.uuid4())], "not a list", [1, 2]):
        response = post(
            api_for(manager),
            {
                "audience": {"client_ids": [str(c.id) for c in clients]},
                "body": "Hello",
                "category": "service",
                "attachments": attachments,
            },
        )
        assert response.status_code == 422, response.content
        assert response.json()["errors"].get("attachments"), response.json()
    assert not Broadcast.objects.exists() and not BroadcastFile.objects.exists()
    assert StoredFile.objects.get(pk=theirs["id"]).attached_at is None
