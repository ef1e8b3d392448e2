"""Every write that changes data is in the audit ledger with its real actor: clients created
and changed (API, admin, service), API tokens issued and revoked, roles changed."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from clientdesk.accounts.models import ApiToken
from clientdesk.accounts.roles import Role
from clientdesk.accounts.services import api_token_create, user_roles_set
from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_search
from clientdesk.clients.services import client_update

pytestmark = pytest.mark.django_db


def _entries(action):
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_a_client_created_through_the_api_is_recorded_with_its_creator(agent, api_for):
    response = api_for(agent).post(
        "/api/v1/clients", {"external_id": "EXT-9", "first_name": "Zoë"}, format="json"
    )
    assert response.status_code == 201
    (entry,) = _entries("client.created")
    assert entry.actor_id == str(agent.pk)
    assert entry.object_id == response.json()["id"]
    assert entry.data["external_id"] == "EXT-9"


def test_a_client_change_is_recorded_with_before_and_after_and_search_follows(agent, make_client):
    client = make_client(first_name="Søren", last_name="Kierkegaard", email="s@example.com")
    client_update(
        actor=agent, client_id=client.id, changes={"last_name": "Ortega", "email": "s@example.com"}
    )
    (entry,) = _entries("client.changed")
    assert entry.actor_id == str(agent.pk)
    assert entry.data == {"before": {"last_name": "Kierkegaard"}, "after": {"last_name": "Ortega"}}
    assert [c.id for c in client_search(query="ortega").items] == [client.id]
    assert client_search(query="kierkegaard").items == []
    client_update(actor=agent, client_id=client.id, changes={"last_name": "Ortega"})
    assert len(_entries("client.changed")) == 1  # nothing changed, nothing recorded


def test_client_update_refuses_derived_fields(agent, make_client):
    from clientdesk.core.errors import ValidationFailed

    client = make_client()
    with pytest.raises(ValidationFailed, match="search_text"):
        client_update(actor=agent, client_id=client.id, changes={"search_text": "x"})
    assert not _entries("client.changed")


def test_admin_edits_of_clients_go_through_the_service(make_user, make_client, client):
    admin = make_user(Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    target = make_client(first_name="Ana", last_name="García", external_id="ES-1")
    client.force_login(admin)
    form = {
        "external_id": "ES-1",
        "first_name": "Ana",
        "last_name": "Ortega",
        "email": target.email,
        "phone": target.phone,
        "language": "en",
        "attributes": "{}",
    }
    response = client.post(f"/admin/clients/client/{target.id}/change/", form)
    assert response.status_code == 302, response.content[:500]
    (entry,) = _entries("client.changed")
    assert entry.actor_id == str(admin.pk)
    assert Client.objects.get(pk=target.pk).sort_name.startswith("ortega")


def test_api_tokens_issued_and_revoked_are_recorded(make_user, client):
    admin = make_user(Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    holder = make_user(Role.AGENT)
    call_command("create_api_token", holder.username)
    (issued,) = _entries("api_token.created")
    assert issued.actor_type == "system"
    assert issued.data["user_id"] == str(holder.pk)
    token = ApiToken.objects.get()
    client.force_login(admin)
    response = client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [str(token.pk)]},
    )
    assert response.status_code == 302
    (revoked,) = _entries("api_token.revoked")
    assert revoked.actor_id == str(admin.pk)
    assert ApiToken.objects.get().revoked_at is not None


def test_roles_changed_in_the_admin_are_recorded(make_user, client):
    admin = make_user(Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    user = make_user(Role.VIEWER)
    client.force_login(admin)
    page = client.get(f"/admin/accounts/user/{user.pk}/change/")
    form = {
        key: value
        for key, value in page.context["adminform"].form.initial.items()
        if value is not None and key not in {"groups", "user_permissions", "password"}
    }
    form.update(
        {
            "username": user.username,
            "groups": [Group.objects.get(name=Role.AGENT).pk],
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
            "is_active": "on",
        }
    )
    form.pop("date_joined", None)
    form.pop("last_login", None)
    response = client.post(f"/admin/accounts/user/{user.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    (entry,) = _entries("user.roles_changed")
    assert entry.actor_id == str(admin.pk)
    assert entry.data["before"] == ["Viewer"] and entry.data["after"] == ["Agent"]


def test_role_permission_changes_are_recorded(make_user, client):
    admin = make_user(Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    viewer = Group.objects.get(name=Role.VIEWER)
    export = Permission.objects.get(codename="export_messages")
    client.force_login(admin)
    perms = [*viewer.permissions.values_list("pk", flat=True), export.pk]
    response = client.post(
        f"/admin/auth/group/{viewer.pk}/change/", {"name": "Viewer", "permissions": perms}
    )
    assert response.status_code == 302, response.content[:500]
    (entry,) = _entries("role.permissions_changed")
    assert entry.actor_id == str(admin.pk)
    assert entry.data["added"] == ["messaging.export_messages"] and entry.data["removed"] == []


def test_user_roles_set_records_the_change(make_user):
    actor = make_user(Role.ADMINISTRATOR)
    user = make_user(Role.VIEWER)
    user_roles_set(actor=actor, user=user, roles=[Role.MANAGER])
    (entry,) = _entries("user.roles_changed")
    assert entry.data["after"] == ["Manager"]
    _, _ = api_token_create(user=user, actor=actor)
    assert _entries("api_token.created")[0].actor_id == str(actor.pk)
