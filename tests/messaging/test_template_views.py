import pytest

from clientdesk.messaging.models import MessageTemplate, MessageTemplateVersion
from clientdesk.messaging.services.templates import template_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_user):
    return make_user("Manager", first_name="Maya", last_name="Manager")


@pytest.fixture
def as_manager(client, manager):
    client.force_login(manager)
    return client


def test_templates_page_is_for_template_managers_only(client, agent, manager):
    client.force_login(agent)
    assert client.get("/templates/").status_code == 403
    assert client.get("/templates/new/").status_code == 403
    assert "Templates</a>" not in client.get("/clients/").content.decode()
    client.force_login(manager)
    assert client.get("/templates/").status_code == 200
    assert "Templates</a>" in client.get("/clients/").content.decode()


def test_create_from_the_form(as_manager):
    response = as_manager.post(
        "/templates/new/", {"name": "Welcome", "language": "en", "body": "Hi {{ firstName }}"}
    )
    template = MessageTemplate.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/templates/{template.id}/"
    page = as_manager.get(response["Location"]).content.decode()
    assert "Welcome" in page
    assert "created (version 1)" in page


def test_form_errors_keep_what_was_typed(as_manager):
    response = as_manager.post(
        "/templates/new/", {"name": "Broken", "language": "en", "body": "Hi {{ firstName "}
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "line 1, column 4" in html
    assert "Hi {{ firstName </textarea>" in html
    assert MessageTemplate.objects.count() == 0


def test_saving_a_variant_makes_a_new_version(as_manager, manager):
    version = template_create(author=manager, name="Docs", body="Hi", language="en")
    url = f"/templates/{version.template_id}/"
    response = as_manager.post(url, {"name": "Docs", "language": "de", "body": "Hallo"})
    assert response.status_code == 302
    assert response["Location"] == f"{url}?language=de"
    latest = MessageTemplateVersion.objects.order_by("-version").first()
    assert (latest.version, latest.variants) == (2, {"en": "Hi", "de": "Hallo"})
    page = as_manager.get(response["Location"]).content.decode()
    assert "Hallo</textarea>" in page
    assert "v2" in page


def test_deactivate_and_reactivate(as_manager, manager):
    version = template_create(author=manager, name="Old", body="Hi", language="en")
    url = f"/templates/{version.template_id}/active/"
    as_manager.post(url, {"active": "0"})
    assert not MessageTemplate.objects.get().is_active
    as_manager.post(url, {"active": "1"})
    assert MessageTemplate.objects.get().is_active


def test_list_search(as_manager, manager):
    for name in ["KYC reminder", "Welcome"]:
        template_create(author=manager, name=name, body="x", language="en")
    html = as_manager.get(
        "/templates/", {"q": "kyc"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="template-table"
    ).content.decode()
    assert "KYC reminder" in html
    assert "Welcome" not in html


def test_live_preview(as_manager, make_client, agent, client):
    ana = make_client(first_name="Ana", email="")
    ok = as_manager.post(
        "/templates/preview/", {"body": "Hi {{firstName}}", "preview_client": ana.id}
    )
    assert "Hi Ana" in ok.content.decode()
    assert 'data-preview-ok="true"' in ok.content.decode()
    bad = as_manager.post("/templates/preview/", {"body": "{{email}}", "preview_client": ana.id})
    assert 'role="alert"' in bad.content.decode()
    assert "Ana" in bad.content.decode() and "{{email}}" in bad.content.decode()
    none = as_manager.post("/templates/preview/", {"body": "x"})
    assert "Choose a client" in none.content.decode()
    client.force_login(agent)
    assert (
        "Hi Ana"
        in client.post(
            "/templates/preview/", {"body": "Hi {{firstName}}", "client_id": ana.id}
        ).content.decode()
    )


def test_preview_is_refused_to_viewers(client, viewer, client_obj):
    client.force_login(viewer)
    response = client.post("/templates/preview/", {"body": "x", "client_id": client_obj.id})
    assert response.status_code == 403
    assert client.get("/templates/preview-clients/", {"q": "z"}).status_code == 403


def test_preview_client_picker_searches(as_manager, make_client):
    make_client(first_name="Zoë", last_name="Müller")
    html = as_manager.get("/templates/preview-clients/", {"q": "muller"}).content.decode()
    assert "Zoë Müller" in html
    assert '<select id="preview-client"' in html


def test_template_markup_is_shown_as_text(as_manager, manager):
    version = template_create(
        author=manager, name="<script>x</script>", body="<b>bold</b>", language="en"
    )
    html = as_manager.get(f"/templates/{version.template_id}/").content.decode()
    assert "<script>x</script>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;</textarea>" in html
