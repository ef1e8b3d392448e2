"""The Clients page's import dialog (preview, then import); the drawer's time zone and consent."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def upload(data: str | bytes):
    raw = data.encode() if isinstance(data, str) else data
    return SimpleUploadedFile("clients.csv", raw, content_type="text/csv")


def test_the_import_button_is_there_only_with_add_client(client, agent, viewer):
    client.force_login(agent)
    assert ">Import clients</button>" in client.get("/clients/").content.decode()
    client.force_login(viewer)
    assert "Import clients" not in client.get("/clients/").content.decode()
    assert client.get("/clients/import/").status_code == 403
    response = client.post("/clients/import/", {"file": upload("external_id,first_name\nA,B\n")})
    assert response.status_code == 403
    assert Client.objects.count() == 0


def test_the_dialog_previews_then_imports(client, agent):
    client.force_login(agent)
    dialog = client.get("/clients/import/", **HTMX).content.decode()
    assert 'aria-labelledby="import-title"' in dialog and ">Import clients</h2>" in dialog
    data = "external_id,first_name,last_name\nW-1,<b>Ada</b>,Lovelace\nW-2,,Nobody\n"
    preview = client.post(
        "/clients/import/", {"file": upload(data), "action": "preview"}, **HTMX
    ).content.decode()
    assert "1 new, 0 to update, 0 unchanged, 1 row with errors." in preview
    assert "&lt;b&gt;Ada&lt;/b&gt;" in preview and "<b>Ada</b>" not in preview
    assert "<strong>Line 3</strong>: first_name: This field cannot be blank." in preview
    assert ">Import 1 client</button>" in preview
    assert Client.objects.count() == 0
    done = client.post(
        "/clients/import/", {"file": upload(data), "action": "import"}, **HTMX
    ).content.decode()
    assert "1 created, 0 updated, 0 unchanged, 1 row with errors (not imported)." in done
    assert Client.objects.get(external_id="W-1").first_name == "<b>Ada</b>"
    (record,) = AuditEntry.objects.filter(action="clients.imported")
    assert record.data["via"] == "clients_page"


def test_an_unusable_file_is_named_in_the_dialog_and_a_4xx_without_htmx(client, agent):
    client.force_login(agent)
    answer = client.post(
        "/clients/import/", {"file": upload(b"\x00\x01binary"), "action": "preview"}, **HTMX
    )
    assert answer.status_code == 200
    assert 'role="alert"' in answer.content.decode()
    plain = client.post("/clients/import/", {"action": "preview"})
    assert plain.status_code == 422
    assert "Choose a CSV file first." in plain.content.decode()


def test_the_drawer_shows_and_changes_time_zone_and_consent(client, agent, viewer, make_client):
    person = make_client(first_name="Zoë", last_name="Müller")
    client.force_login(viewer)
    html = client.get(f"/clients/{person.id}/", **HTMX).content.decode()
    assert "Default (outreach setting)" in html and "Receives outreach" in html
    assert "Save time zone" not in html and "Record opt-out request" not in html
    assert (
        client.post(f"/clients/{person.id}/timezone", {"timezone": "Asia/Tokyo"}).status_code == 403
    )
    assert (
        client.post(f"/clients/{person.id}/consent", {"outreach_opt_out": "1"}).status_code == 403
    )

    client.force_login(agent)
    html = client.get(f"/clients/{person.id}/", **HTMX).content.decode()
    assert "Save time zone" in html
    assert "asked in writing to receive no outreach" in html  # the confirmation
    changed = client.post(
        f"/clients/{person.id}/timezone", {"timezone": "Asia/Tokyo"}, **HTMX
    ).content.decode()
    assert "Time zone set to Asia/Tokyo." in changed
    person.refresh_from_db()
    assert person.timezone == "Asia/Tokyo"
    bad = client.post(f"/clients/{person.id}/timezone", {"timezone": "Mars/Base"}, **HTMX)
    assert bad.status_code == 422
    assert 'role="alert"' in bad.content.decode()
    consent = client.post(
        f"/clients/{person.id}/consent", {"outreach_opt_out": "1"}, **HTMX
    ).content.decode()
    assert "Opted out on" in consent and "Record request to resume outreach" in consent
    (entry,) = AuditEntry.objects.filter(action="client.consent_changed")
    assert entry.actor_id == str(agent.pk) and entry.data["via"] == "staff_ui"
