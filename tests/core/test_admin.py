import uuid

import pytest

from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.services.sending import message_send

pytestmark = pytest.mark.django_db


def test_admin_lists_render_and_show_markup_as_text(client, make_user, make_client, agent):
    admin = make_user("Administrator", is_staff=True, is_superuser=True)
    target = make_client(first_name="<img src=x onerror=alert(1)>")
    message_send(
        sender=agent,
        client_id=target.id,
        body="<script>alert(2)</script>",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    client.force_login(admin)
    for path in [
        "/admin/clients/client/",
        "/admin/messaging/message/",
        "/admin/messaging/messagetemplate/",
        "/admin/audit/activityevent/",
        "/admin/audit/auditrecord/",
        "/admin/delivery/delivery/",
        "/admin/accounts/apitoken/",
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert "<img src=x onerror" not in html
        assert "<script>alert(2)</script>" not in html
    permission_page = client.get("/admin/auth/group/").content.decode()
    assert "Agent" in permission_page


def test_history_cannot_be_edited_in_the_admin(client, make_user, client_obj, agent):
    admin = make_user("Administrator", is_staff=True, is_superuser=True)
    result = message_send(
        sender=agent,
        client_id=client_obj.id,
        body="hi",
        idempotency_key="admin-k",
        meta=RequestMeta(),
    )
    client.force_login(admin)
    page = client.get(f"/admin/messaging/message/{result.message_id}/change/").content.decode()
    assert 'name="body"' not in page  # read-only
    assert client.post(f"/admin/messaging/message/{result.message_id}/delete/").status_code == 403
