import pytest
from django.contrib.auth.models import Group, Permission

from clientdesk.accounts.models import User

pytestmark = pytest.mark.django_db

CONTRACT_PERMISSIONS = {
    "messaging.send_private_message": "Send a private message",
    "messaging.view_message": "Can view message",
    "messaging.manage_templates": "Manage message templates",
    "messaging.export_messages": "Export message logs",
    "delivery.manage_integration": "Manage integration settings",
    "audit.view_auditrecord": "Can view audit record",
    "clients.add_client": "Can add client",
    "clients.change_client": "Can change client",
}
CLIENT_WRITE = {"clients.add_client", "clients.change_client"}


def test_permissions_have_the_contract_names():
    for dotted, name in CONTRACT_PERMISSIONS.items():
        app_label, codename = dotted.split(".")
        perm = Permission.objects.get(content_type__app_label=app_label, codename=codename)
        assert perm.name == name


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (
            "Manager",
            {
                "messaging.send_private_message",
                "messaging.view_message",
                "messaging.manage_templates",
                "messaging.export_messages",
                *CLIENT_WRITE,
            },
        ),
        ("Agent", {"messaging.send_private_message", "messaging.view_message", *CLIENT_WRITE}),
        ("Viewer", {"messaging.view_message"}),
        ("Integration", {"messaging.view_message", *CLIENT_WRITE}),
    ],
)
def test_roles_hold_exactly_their_contract_permissions(make_user, role, expected):
    user = make_user(role)
    contract_perms = {p for p in user.get_all_permissions() if p in CONTRACT_PERMISSIONS}
    assert contract_perms == expected


def test_administrator_holds_every_permission(make_user):
    user = make_user("Administrator")
    assert Group.objects.get(name="Administrator").permissions.count() == Permission.objects.count()
    for dotted in CONTRACT_PERMISSIONS:
        assert user.has_perm(dotted)


def test_every_app_grants_only_its_own_permissions_and_the_sync_reads_them():
    """The grants live in each app's permissions.py; after migrate each role holds exactly the
    union of what the apps grant it (no permission named anywhere else)."""
    from django.apps import apps

    from clientdesk.accounts.roles import Role
    from clientdesk.core.permissions import app_role_grants

    declared: dict[str, set[str]] = {role: set() for role in Role}
    for config in apps.get_app_configs():
        for role, perms in app_role_grants(config).items():
            declared[role] |= {str(p) for p in perms}
    for role in Role:
        if role == Role.ADMINISTRATOR:
            continue
        group = Group.objects.get(name=role)
        held = {
            f"{app}.{code}"
            for app, code in group.permissions.values_list("content_type__app_label", "codename")
        }
        assert held == declared[role], role


def test_a_misspelt_permission_in_a_template_fails_loudly(rf, make_user):
    from django.template import engines

    from clientdesk.core.permissions import PermissionFlags, UnknownPermission

    template = engines["django"].from_string("{% if can.send_privat_message %}x{% endif %}")
    with pytest.raises(UnknownPermission):
        template.render({"can": PermissionFlags(make_user("Agent"))})


def test_passwords_are_hashed_with_argon2(make_user, settings):
    from clientdesk import settings as production

    settings.PASSWORD_HASHERS = production.PASSWORD_HASHERS
    user = make_user("Agent", password="a long and unusual passphrase")
    assert user.password.startswith("argon2")


def test_login_and_logout(client, make_user):
    user = make_user("Agent", password="a long and unusual passphrase")
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": "a long and unusual passphrase"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/clients/"
    assert client.get("/clients/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/clients/").status_code == 302


def test_wrong_password_shows_an_error(client, make_user):
    user = make_user("Agent")
    response = client.post("/accounts/login/", {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_repeated_failed_logins_lock_the_account_for_that_address(client, make_user, settings):
    user = make_user("Agent", password="a long and unusual passphrase")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    locked = client.post(
        "/accounts/login/", {"username": user.username, "password": "a long and unusual passphrase"}
    )
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert not User.objects.get(pk=user.pk).last_login
