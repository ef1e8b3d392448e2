import pytest

from clientdesk.messaging.models import MessageTemplate, MessageTemplateVersion
from clientdesk.messaging.services.templates import (
    SetActive,
    SetVariant,
    template_change,
    template_create,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_user):
    return make_user("Manager", first_name="Maya", last_name="Manager")


@pytest.fixture
def as_manager(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def active_and_retired(manager):
    active = template_create(
        author=manager, name="Welcome", body="Hi {{ firstName }}", language="en"
    )
    template_change(
        author=manager,
        template_id=active.template_id,
        actions=[SetVariant("Hallo <b>du</b>", "de")],
    )
    retired = template_create(author=manager, name="Retired", body="Old text", language="en")
    template_change(author=manager, template_id=retired.template_id, actions=[SetActive(False)])
    return active.template, retired.template


def test_senders_read_the_active_templates_and_change_nothing(client, agent, active_and_retired):
    active, retired = active_and_retired
    client.force_login(agent)
    assert "Templates</a>" in client.get("/clients/").content.decode()
    listing = client.get("/templates/").content.decode()
    assert "Welcome" in listing and "Retired" not in listing
    assert "New template" not in listing
    page = client.get(f"/templates/{active.id}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "German (de)" in html and "English (en)" in html
    assert "Hallo &lt;b&gt;du&lt;/b&gt;" in html  # a body is text, never markup
    assert "<textarea" not in html and "Deactivate" not in html
    assert client.get(f"/templates/{retired.id}/").status_code == 404  # as if it did not exist
    before = active.versions.count()
    assert client.post(f"/templates/{active.id}/", {"name": "X", "body": "Y"}).status_code == 403
    assert client.post(f"/templates/{active.id}/active/", {"active": "0"}).status_code == 403
    assert client.get("/templates/new/").status_code == 403
    assert client.post("/templates/new/", {"name": "N", "body": "B"}).status_code == 403
    assert active.versions.count() == before
    assert MessageTemplate.objects.get(pk=active.pk).is_active


def test_viewers_see_no_templates(client, viewer, active_and_retired):
    active, _ = active_and_retired
    client.force_login(viewer)
    assert "Templates</a>" not in client.get("/clients/").content.decode()
    assert client.get("/templates/").status_code == 403
    assert client.get(f"/templates/{active.id}/").status_code == 403


def test_managers_see_every_template_and_edit(client, manager, active_and_retired):
    _, retired = active_and_retired
    client.force_login(manager)
    listing = client.get("/templates/").content.decode()
    assert "Welcome" in listing and "Retired" in listing and "New template" in listing
    assert "<textarea" in client.get(f"/templates/{retired.id}/").content.decode()


def test_the_panel_offers_the_active_templates_only(client, agent, client_obj, active_and_retired):
    client.force_login(agent)
    panel = client.get(f"/clients/{client_obj.id}/send/").content.decode()
    assert 'value="Welcome"' in panel and "Retired" not in panel


def test_one_rule_gates_every_read_of_templates():
    """The Templates page, the template API and the panel's `can.read_templates` use the same
    named rule, so they cannot drift apart."""
    from clientdesk.core.permissions import all_access_rules
    from clientdesk.messaging.apis import TemplateDetailApi, TemplateListCreateApi
    from clientdesk.messaging.permissions import READ_TEMPLATES
    from clientdesk.messaging.template_views import template_detail, template_list

    assert all_access_rules()["read_templates"] is READ_TEMPLATES
    assert TemplateListCreateApi.required_permissions["GET"] is READ_TEMPLATES
    assert TemplateDetailApi.required_permissions["GET"] is READ_TEMPLATES
    assert template_list.required_permissions == READ_TEMPLATES
    assert template_detail.required_permissions == READ_TEMPLATES


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
