import pytest
from django.contrib.auth.models import Group, Permission

from clientdesk.accounts.models import User

pytestmark = pytest.mark.django_db

CONTRACT_PERMISSIONS = {
    "messaging.send_private_message": "Send a private message",
    "messaging.view_message": "Can view message",
    "messaging.manage_templates": "Manage message templates",
    "messaging.export_messages": "Export message logs",
}


def test_permissions_have_the_contract_names():
    for dotted, name in CONTRACT_PERMISSIONS.items():
        app_label, codename = dotted.split(".")
        perm = Permission.objects.get(content_type__app_label=app_label, codename=codename)
        assert perm.name == name


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("Manager", set(CONTRACT_PERMISSIONS)),
        ("Agent", {"messaging.send_private_message", "messaging.view_message"}),
        ("Viewer", {"messaging.view_message"}),
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


def test_passwords_are_hashed_with_argon2(make_user):
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
