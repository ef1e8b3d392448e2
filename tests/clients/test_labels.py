"""Custom attributes read as labels, and languages by name, wherever staff pick or read them."""

import pytest

from clientdesk.clients.templatetags.client_labels import attribute_label

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("account_manager", "Account manager"),
        ("accountManager", "Account manager"),
        ("KYC_level", "Kyc level"),
        ("x", "X"),
        ("_", "_"),
        ("tier2", "Tier2"),
    ],
)
def test_attribute_label(name, label):
    assert attribute_label(name) == label


@pytest.mark.django_db
def test_drawer_and_panel_show_attribute_labels(client, agent, make_client):
    person = make_client(attributes={"account_manager": "<b>Ann</b>"})
    client.force_login(agent)
    drawer = client.get(f"/clients/{person.id}/", **HTMX).content.decode()
    assert '<dt title="account_manager">Account manager</dt>' in drawer
    assert "&lt;b&gt;Ann&lt;/b&gt;" in drawer
    panel = client.get(f"/clients/{person.id}/send/", **HTMX).content.decode()
    assert "Account manager <span" in panel and "<code>account_manager</code>" in panel


@pytest.mark.django_db
def test_template_language_menu_names_languages(client, make_user):
    client.force_login(make_user("Manager"))
    html = client.get("/templates/new/").content.decode()
    assert '<option value="de" >German (de)</option>' in html or ">German (de)</option>" in html
    assert ">Portuguese (pt)</option>" in html
