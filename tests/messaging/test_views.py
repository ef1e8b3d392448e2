import re

import pytest

from clientdesk.audit.models import ActivityEvent
from clientdesk.messaging.models import Message

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _key(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


def test_panel_is_a_dialog_named_send_a_message_with_the_client_name(client, agent, client_obj):
    client.force_login(agent)
    html = client.get(f"/clients/{client_obj.id}/send/", **HTMX).content.decode()
    assert html.lstrip().startswith('<dialog class="drawer" id="send-panel"')
    assert 'aria-labelledby="send-panel-title"' in html
    assert '<h2 id="send-panel-title">Send a message</h2>' in html
    assert "Zoë Müller" in html
    assert 'placeholder="Type your message..."' in html
    # No maxlength: browsers count it in UTF-16 units, the server in characters, so an emoji
    # message the server accepts would be cut short; the counter and the preview gate instead.
    assert "maxlength" not in html
    assert "0 / 5,000" in html
    assert ">Send</span>" in html
    assert "{{firstName}}" in html


def test_each_panel_opening_gets_a_fresh_idempotency_key(client, agent, client_obj):
    client.force_login(agent)
    url = f"/clients/{client_obj.id}/send/"
    assert _key(client.get(url, **HTMX).content.decode()) != _key(
        client.get(url, **HTMX).content.decode()
    )


def test_htmx_send_stores_message_and_returns_fresh_form_list_and_status_toast(
    client, agent, client_obj
):
    client.force_login(agent)
    response = client.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "Hello {{firstName}}", "idempotency_key": "ui-key-1"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    message = Message.objects.get()
    assert (message.body, message.sender, message.idempotency_key) == (
        "Hello Zoë",
        agent,
        "ui-key-1",
    )
    assert ActivityEvent.objects.filter(subject_id=message.id).exists()
    assert '<form id="compose"' in html
    assert _key(html) != "ui-key-1"
    assert '<ol id="sent-list"' in html
    assert 'hx-swap-oob="true"' in html
    assert 'role="status"' in html
    assert "Sent to Zoë Müller&#x27;s cabinet." in html  # the apostrophe is escaped
    assert "Hello Zoë" in html


def test_htmx_double_submit_with_one_key_stores_one_message(client, agent, client_obj):
    client.force_login(agent)
    for _ in range(2):
        response = client.post(
            f"/clients/{client_obj.id}/messages/",
            {"body": "Once", "idempotency_key": "ui-double"},
            **HTMX,
        )
        assert response.status_code == 200
    assert Message.objects.count() == 1


def test_htmx_send_failure_is_an_alert_toast_and_keeps_the_form(client, agent, client_obj):
    client.force_login(agent)
    response = client.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "Hi {{nickname}}", "idempotency_key": "ui-key-2"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert response["HX-Reswap"] == "none"
    assert 'role="alert"' in html
    assert "{{nickname}}" in html
    assert Message.objects.count() == 0


def test_viewer_gets_no_send_action_and_is_refused(client, viewer, client_obj):
    client.force_login(viewer)
    listing = client.get("/clients/").content.decode()
    assert "Send a message" not in listing
    drawer = client.get(f"/clients/{client_obj.id}/", **HTMX).content.decode()
    assert "Send a message" not in drawer
    assert client.get(f"/clients/{client_obj.id}/send/").status_code == 403
    response = client.post(
        f"/clients/{client_obj.id}/messages/", {"body": "x", "idempotency_key": "k"}, **HTMX
    )
    assert response.status_code == 403
    assert 'role="alert"' in response.content.decode()
    assert Message.objects.count() == 0


def test_without_javascript_send_redirects_back_to_the_panel_with_a_toast(
    client, agent, client_obj
):
    client.force_login(agent)
    response = client.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "Plain form", "idempotency_key": "nojs-1"},
        follow=True,
    )
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == f"/clients/{client_obj.id}/send/"
    assert "Sent to Zoë Müller&#x27;s cabinet." in html  # the apostrophe is escaped
    assert "Plain form" in html


def test_without_javascript_failure_keeps_the_text_and_the_key(client, agent, client_obj):
    client.force_login(agent)
    response = client.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "Hi {{nickname}}", "idempotency_key": "nojs-2"},
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "Hi {{nickname}}</textarea>" in html
    assert _key(html) == "nojs-2"
    assert "unknown variable" in html


def test_message_body_markup_is_shown_as_text(client, agent, client_obj):
    client.force_login(agent)
    client.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "<script>alert(1)</script>", "idempotency_key": "xss"},
        **HTMX,
    )
    html = client.get(f"/clients/{client_obj.id}/send/", **HTMX).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_panel_offers_the_catalogue_and_the_clients_own_attributes(client, agent, make_client):
    target = make_client(attributes={"tier": "gold", "account_manager": "Priya"})
    client.force_login(agent)
    html = client.get(f"/clients/{target.id}/send/", HTTP_HX_REQUEST="true").content.decode()
    for name in ["firstName", "sender.fullName", "today", "tier", "account_manager"]:
        assert f'data-insert="{{{{{name}}}}}"' in html, name
    assert "Insert variable" in html
