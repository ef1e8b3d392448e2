"""The Audit page: who may see it, records newest first, filters, Verify now, downloads."""

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.db import transaction

from clientdesk.audit.append_only import ledger_maintenance
from clientdesk.audit.models import AuditRecord
from clientdesk.audit.services import audit_append, audit_checkpoint_create, audit_sequence

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(make_user):
    return make_user("Administrator", first_name="Ada", last_name="Admin")


@pytest.fixture
def records(admin_user):
    rows = [
        (
            "template.created",
            admin_user,
            "message_template",
            "t-1",
            {"name": "<img src=x onerror=alert(1)>"},
        ),
        ("message.sent", None, "message", "m-1", {"client_id": "c-1"}),
        (
            "messages.exported",
            admin_user,
            "message_export",
            "abc",
            {"rows": 3, "sha256": "ab" * 32, "via": "api"},
        ),
    ]
    for n, (action, actor, object_type, object_id, data) in enumerate(rows):
        with transaction.atomic():
            audit_append(
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                created_at=datetime(2026, 11, 10 + n, 12, 0, tzinfo=UTC),
                data=data,
            )
    audit_sequence()


@pytest.mark.parametrize("role", [None, "Viewer", "Agent", "Manager"])
def test_the_audit_page_needs_view_audit_record(client, make_user, role):
    client.force_login(make_user(role))
    for url in ["/audit/", "/audit/checkpoint.txt", "/audit/public-key.pem"]:
        assert client.get(url).status_code == 403
    assert client.post("/audit/verify/").status_code == 403


def test_anonymous_users_are_sent_to_login(client):
    response = client.get("/audit/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_records_newest_first_with_a_readable_summary_and_escaped_text(client, admin_user, records):
    client.force_login(admin_user)
    whole = client.get("/audit/").content.decode()
    assert 'href="/audit/"' in whole  # the navigation link
    page = whole[whole.index('id="audit-records"') :]
    assert (
        page.index("messages.exported")
        < page.index("message.sent")
        < page.index("template.created")
    )
    exported = "Ada Admin</bdi> exported <bdi>3</bdi> messages as <bdi>a file</bdi> (<bdi>api"
    assert exported in page
    assert "Clientdesk</bdi> sent a message to client <bdi>c-1</bdi>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "Ada Admin" in page and "Clientdesk" in page


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"action": "message.sent"}, ["m-1"], ["t-1", "message_export"]),
        ({"actor": "ada"}, ["t-1", "message_export"], ["m-1"]),
        ({"object": "t-1"}, ["t-1"], ["m-1", "message_export"]),
        ({"since": "2026-11-11", "until": "2026-11-11"}, ["m-1"], ["t-1", "message_export"]),
    ],
)
def test_filters(client, admin_user, records, params, shown, hidden):
    client.force_login(admin_user)
    section = client.get("/audit/", params, HTTP_HX_REQUEST="true").content.decode()
    assert section.lstrip().startswith('<section id="audit-records"')
    for text in shown:
        assert text in section
    for text in hidden:
        assert text not in section


@pytest.mark.parametrize("since", ["garbage", "9999-12-31", "0001-01-01", "2026-13-01", "١٢"])
def test_a_date_filter_that_is_not_a_day_is_refused_by_name(client, admin_user, records, since):
    client.force_login(admin_user)
    toast = client.get("/audit/", {"since": since}, HTTP_HX_REQUEST="true")
    assert toast.status_code == 422
    assert 'role="alert"' in toast.content.decode()
    assert "since" in toast.content.decode()
    page = client.get("/audit/", {"since": since})
    assert page.status_code == 422
    assert "YYYY-MM-DD" in page.content.decode()


def test_verify_now_says_intact_and_what_it_cannot_see(client, admin_user, records):
    audit_checkpoint_create()
    client.force_login(admin_user)
    result = client.post("/audit/verify/", HTTP_HX_REQUEST="true").content.decode()
    assert "Intact." in result and "the first 3 match the signed checkpoint exactly" in result
    assert "cannot detect removal of the newest records" in result
    full = client.post("/audit/verify/").content.decode()
    assert "<h1>Audit</h1>" in full and "Intact." in full


def test_verify_now_names_a_removed_tail(client, admin_user, records):
    audit_checkpoint_create()
    with transaction.atomic(), ledger_maintenance():
        AuditRecord.objects.filter(sequence=3).delete()
    client.force_login(admin_user)
    result = client.post("/audit/verify/", HTTP_HX_REQUEST="true").content.decode()
    assert 'role="alert"' in result
    assert "Broken at record #3:</strong> shorter ledger: records #3 to #3 are missing" in result


def test_downloads_verify_each_other(client, admin_user, records):
    audit_checkpoint_create()
    client.force_login(admin_user)
    note = client.get("/audit/checkpoint.txt")
    assert note["Content-Disposition"] == 'attachment; filename="checkpoint-3.txt"'
    pem = client.get("/audit/public-key.pem")
    assert pem["Content-Type"] == "application/x-pem-file"
    key = load_pem_public_key(pem.content)
    body, _, signature = note.content.decode().partition("\n\n")
    key.verify(base64.b64decode(signature.split(" ")[-1])[4:], (body + "\n").encode())


def test_checkpoint_download_before_any_checkpoint_is_a_404(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/audit/checkpoint.txt").status_code == 404


def test_a_nul_in_a_filter_is_refused_naming_the_field(client, admin_user, records):
    client.force_login(admin_user)
    response = client.get("/audit/", {"actor": "\x00"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    body = response.content.decode()
    assert 'role="alert"' in body and "actor must not contain the NUL character" in body
