"""The Administration area: who may use it, invitations, roles, deactivation (sessions and
tokens end at once, over real HTTP), API tokens and the roles page. Every change is checked in
the ledger."""

import re
import uuid
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse
from rest_framework.test import APIClient

from clientdesk.accounts.invitations import invitation_tokens
from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.roles import Role
from clientdesk.accounts.services import api_token_create
from clientdesk.audit.models import AuditEntry, AuditRecord

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://\S+/accounts/invitation/\S+/")


def ledger(action: str, object_id: Any = None) -> list[dict[str, Any]]:
    """Data of the ledger records (sequenced or still waiting) with `action`."""
    found = []
    for model in (AuditEntry, AuditRecord):
        rows = model.objects.filter(action=action)
        if object_id is not None:
            rows = rows.filter(object_id=str(object_id))
        found += [{"actor_id": row.actor_id, **row.data} for row in rows.order_by("created_at")]
    return found


@pytest.fixture
def admin_user(make_user):
    return make_user(Role.ADMINISTRATOR, username="ada", first_name="Ada", last_name="Admin")


@pytest.fixture
def as_admin(client, admin_user):
    client.force_login(admin_user)
    return client


def _administration_urls(target: User, token: ApiToken) -> list[tuple[str, str]]:
    """(method, url) of every route of the area, checked against the URL module itself."""
    get_resolver().resolve("/administration/")  # the root URLconf registers the id converter
    from clientdesk.accounts.administration import urls as administration_urls

    urls = []
    for pattern in administration_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {}
        if "user_id" in str(pattern.pattern):
            kwargs["user_id"] = target.pk
        if "token_id" in str(pattern.pattern):
            kwargs["token_id"] = token.pk
        url = reverse(f"administration:{pattern.name}", kwargs=kwargs)
        gated = pattern.callback
        method = "GET" if getattr(gated, "__name__", "").endswith("_page") else "POST"
        urls.append((method, url))
    assert len(urls) == 12
    assert {u for _, u in urls} >= {"/administration/", "/administration/roles/"}
    return urls


@pytest.mark.parametrize(
    "role", [Role.MANAGER, Role.AGENT, Role.VIEWER, Role.INTEGRATION, None], ids=str
)
def test_every_administration_url_is_403_for_anyone_but_administrators(role, make_user, client):
    target = make_user(Role.AGENT)
    token, _ = api_token_create(user=target, name="kept")
    client.force_login(make_user(role))
    for method, url in _administration_urls(target, token):
        response = client.generic(
            method,
            url,
            f"roles=Administrator&user={target.pk}&email=x@example.com",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 403, (method, url)
    target.refresh_from_db()
    token.refresh_from_db()
    assert target.is_active and token.revoked_at is None
    assert list(target.groups.values_list("name", flat=True)) == [Role.AGENT]
    assert 'href="/administration/"' not in client.get("/clients/").content.decode()


def test_the_anonymous_are_sent_to_log_in(client, make_user):
    target = make_user(Role.AGENT)
    token, _ = api_token_create(user=target)
    for method, url in _administration_urls(target, token):
        response = client.generic(method, url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_superuser_without_roles_and_an_administrator_may(make_user, client):
    for user in (make_user(None, is_superuser=True), make_user(Role.ADMINISTRATOR)):
        client.force_login(user)
        page = client.get("/clients/").content.decode()
        assert 'href="/administration/"' in page
        assert client.get("/administration/").status_code == 200
        assert client.get("/administration/tokens/").status_code == 200
        assert client.get("/administration/roles/").status_code == 200


def test_a_post_without_the_csrf_token_changes_nothing(make_user, admin_user):
    target = make_user(Role.AGENT)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    for url in (
        f"/administration/users/{target.pk}/deactivate/",
        f"/administration/users/{target.pk}/roles/",
        "/administration/users/invite/",
        "/administration/tokens/create/",
    ):
        response = browser.post(url, {"roles": "Administrator", "email": "x@example.com"})
        assert response.status_code == 403, url
    target.refresh_from_db()
    assert target.is_active and not User.objects.filter(email="x@example.com").exists()
    assert not ApiToken.objects.exists()


# --- Users -----------------------------------------------------------------------------------


def test_the_users_list_shows_who_can_do_what(as_admin, make_user, admin_user):
    make_user(Role.VIEWER, username="vera", email="vera@example.com")
    make_user(Role.AGENT, username="gone", is_active=False)
    page = as_admin.get("/administration/").content.decode()
    row = re.search(r"<tr>\s*<td><a[^>]*>[^<]*</a></td>\s*<td><bdi>vera</bdi>.*?</tr>", page, re.S)
    assert row, page
    assert "vera@example.com" in row[0] and ">Viewer<" in row[0]
    assert "<td>Yes</td>" in row[0] and "never" in row[0] and "<td>Off</td>" in row[0]
    assert "Deactivated" in page


def _invite(client: Client, **fields: Any) -> Any:
    data = {"email": "new.person@example.com", "first_name": "Nia", "last_name": "New"}
    data.update(fields)
    return client.post("/administration/users/invite/", data)


def test_an_invitation_sets_a_password_once_and_the_invitee_signs_in(as_admin, admin_user):
    response = _invite(as_admin, roles=["Agent", "Viewer"])
    invitee = User.objects.get(email="new.person@example.com")
    assert response.status_code == 302 and response["Location"].endswith(f"/{invitee.pk}/")
    assert invitee.username == "new.person@example.com"
    assert not invitee.has_usable_password()
    assert sorted(invitee.groups.values_list("name", flat=True)) == ["Agent", "Viewer"]
    assert "Invited" in as_admin.get(response["Location"]).content.decode()

    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["new.person@example.com"]
    link = LINK.search(sent.body)
    assert link, sent.body
    url = link[0].removeprefix("http://testserver")

    invitee_browser = Client()
    opened = invitee_browser.get(url)
    # Django moves the token out of the URL into the session before showing the form.
    assert opened.status_code == 302 and opened["Location"].endswith("/set-password/")
    form = invitee_browser.get(opened["Location"])
    assert "Set your password" in form.content.decode()
    assert "new.person@example.com" in form.content.decode()
    weak = invitee_browser.post(
        opened["Location"], {"new_password1": "123", "new_password2": "123"}
    )
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    done = invitee_browser.post(
        opened["Location"],
        {"new_password1": "a long new passphrase", "new_password2": "a long new passphrase"},
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/login/"
    invitee.refresh_from_db()
    assert invitee.check_password("a long new passphrase")

    # The link worked once.
    again = Client().get(url)
    assert again.status_code == 200 and "no longer works" in again.content.decode()

    signed_in = invitee_browser.post(
        "/accounts/login/",
        {"username": invitee.username, "password": "a long new passphrase"},
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/clients/"
    assert invitee_browser.get("/clients/").status_code == 200

    assert ledger("user.created", invitee.pk)[0]["actor_id"] == str(admin_user.pk)
    assert ledger("user.roles_changed", invitee.pk)[0]["after"] == ["Agent", "Viewer"]
    invited = ledger("user.invited", invitee.pk)
    assert invited and invited[0]["email"] == "new.person@example.com"
    changed = ledger("user.password_changed", invitee.pk)
    assert changed == [{"actor_id": str(invitee.pk), "username": invitee.username, "usable": True}]


def test_an_invitation_link_expires(as_admin, settings):
    _invite(as_admin)
    invitee = User.objects.get(email="new.person@example.com")
    uid = LINK.search(mail.outbox[0].body)[0].split("/")[-3]  # type: ignore[index]
    hours = settings.CLIENTDESK_INVITATION_HOURS
    # A token made just over the validity ago, by Django's own token code (which counts
    # seconds from 2001).
    now = invitation_tokens._num_seconds(invitation_tokens._now())
    made = now - hours * 3600 - 60
    old = invitation_tokens._make_token_with_timestamp(invitee, made, invitation_tokens.secret)
    fresh = invitation_tokens._make_token_with_timestamp(
        invitee, made + 120, invitation_tokens.secret
    )
    for token, works in ((old, False), (fresh, True)):
        page = Client().get(f"/accounts/invitation/{uid}/{token}/", follow=True).content.decode()
        assert ("no longer works" not in page) is works, token
        assert ('name="new_password1"' in page) is works, token


def test_a_password_reset_token_is_not_an_invitation(as_admin):
    from django.contrib.auth.tokens import default_token_generator

    _invite(as_admin)
    invitee = User.objects.get(email="new.person@example.com")
    uid = LINK.search(mail.outbox[0].body)[0].split("/")[-3]  # type: ignore[index]
    response = Client().get(
        f"/accounts/invitation/{uid}/{default_token_generator.make_token(invitee)}/", follow=True
    )
    assert "no longer works" in response.content.decode()


def test_a_deactivated_invitee_cannot_use_the_link(as_admin):
    _invite(as_admin)
    invitee = User.objects.get(email="new.person@example.com")
    url = LINK.search(mail.outbox[0].body)[0].removeprefix("http://testserver")  # type: ignore[index]
    as_admin.post(f"/administration/users/{invitee.pk}/deactivate/")
    assert "no longer works" in Client().get(url, follow=True).content.decode()


def test_the_invitation_can_be_sent_again_only_before_a_password_is_set(as_admin, make_user):
    _invite(as_admin)
    invitee = User.objects.get(email="new.person@example.com")
    as_admin.post(f"/administration/users/{invitee.pk}/invitation/")
    assert len(mail.outbox) == 2 and len(ledger("user.invited", invitee.pk)) == 2
    member = make_user(Role.AGENT, email="member@example.com")
    response = as_admin.post(f"/administration/users/{member.pk}/invitation/", follow=True)
    assert "has not set a password yet" in response.content.decode()
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"email": "not an address"}, "valid e-mail"),
        ({"email": "a@example.com\nBcc: victim@example.com"}, "valid e-mail"),
        ({"email": "<script>alert(1)</script>@example.com"}, "valid e-mail"),
        ({"email": "x" * 5000 + "@example.com"}, "254"),
        ({"first_name": "N" * 151}, "150"),
        ({"username": "bad name<script>"}, "Letters, digits"),
        ({"roles": ["Administrator", "Overlord"]}, "Unknown role"),
    ],
    ids=["plain", "header-injection", "markup", "huge", "long-name", "username", "role"],
)
def test_a_bad_invitation_is_refused_and_creates_nothing(as_admin, fields, complaint):
    before = User.objects.count()
    response = _invite(as_admin, **fields)
    assert response.status_code == 422
    assert complaint in response.content.decode()
    assert User.objects.count() == before and not mail.outbox
    assert "<script>alert" not in response.content.decode()


def test_an_address_or_username_taken_is_refused(as_admin, make_user):
    make_user(Role.AGENT, username="taken", email="Taken@Example.com")
    assert (
        "already has this e-mail" in _invite(as_admin, email="taken@example.com").content.decode()
    )
    assert "username is taken" in _invite(as_admin, username="TAKEN").content.decode()
    assert not mail.outbox


def test_names_with_markup_and_other_scripts_are_shown_as_text(as_admin):
    _invite(as_admin, first_name="<img src=x onerror=alert(1)>", last_name="אבג \u202e")
    page = as_admin.get("/administration/").content.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_nul_and_invalid_text_are_refused_before_the_view(as_admin):
    response = _invite(as_admin, first_name="Nul\x00")
    assert response.status_code == 422 and not mail.outbox
    assert not User.objects.filter(email="new.person@example.com").exists()


def test_when_the_mail_server_refuses_the_user_stays_and_can_be_sent_again(as_admin, settings):
    import socket

    with socket.socket() as closed:  # a port where nothing listens
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    response = _invite(as_admin)
    invitee = User.objects.get(email="new.person@example.com")
    page = as_admin.get(response["Location"]).content.decode()
    assert "could not be sent" in page and "Send the invitation again" in page
    assert not ledger("user.invited", invitee.pk)


def test_roles_are_changed_and_recorded(as_admin, make_user, admin_user):
    target = make_user(Role.VIEWER)
    as_admin.post(f"/administration/users/{target.pk}/roles/", {"roles": ["Manager", "Agent"]})
    assert sorted(target.groups.values_list("name", flat=True)) == ["Agent", "Manager"]
    record = ledger("user.roles_changed", target.pk)
    assert record == [
        {
            "actor_id": str(admin_user.pk),
            "username": target.username,
            "before": ["Viewer"],
            "after": ["Agent", "Manager"],
        }
    ]
    unknown = as_admin.post(
        f"/administration/users/{target.pk}/roles/", {"roles": ["Superhero"]}, follow=True
    )
    assert "Choose roles from the list" in unknown.content.decode()
    assert sorted(target.groups.values_list("name", flat=True)) == ["Agent", "Manager"]


def test_an_administrator_cannot_lock_themself_out(as_admin, admin_user):
    demoted = as_admin.post(
        f"/administration/users/{admin_user.pk}/roles/", {"roles": ["Viewer"]}, follow=True
    )
    assert "cannot take the Administrator role from yourself" in demoted.content.decode()
    gone = as_admin.post(f"/administration/users/{admin_user.pk}/deactivate/", follow=True)
    assert "cannot deactivate yourself" in gone.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.is_active and admin_user.groups.filter(name="Administrator").exists()


def test_an_unknown_user_or_token_is_404(as_admin):
    missing = uuid.uuid4()
    assert as_admin.get(f"/administration/users/{missing}/").status_code == 404
    assert as_admin.post(f"/administration/users/{missing}/deactivate/").status_code == 404
    assert as_admin.post(f"/administration/tokens/{missing}/revoke/").status_code == 404
    assert as_admin.get("/administration/users/not-a-uuid/").status_code == 404


# --- Deactivation over real HTTP -------------------------------------------------------------


def _sign_in(http: httpx.Client, username: str, password: str) -> None:
    page = http.get("/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert csrf, page.text
    done = http.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf[1]},
    )
    assert done.status_code == 302 and done.headers["location"] == "/clients/", done.text


@pytest.mark.django_db(transaction=True)
def test_deactivation_ends_a_live_session_and_a_token_at_once(make_user, settings):
    from tests.servers import InProcessServer

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    admin = make_user(Role.ADMINISTRATOR, password="admin passphrase here")
    agent = make_user(Role.AGENT, password="agent passphrase here")
    other = make_user(Role.AGENT, password="other passphrase here")
    _, token = api_token_create(user=agent, name="their script")
    server = InProcessServer()
    try:
        with (
            httpx.Client(base_url=server.url, timeout=30) as browser,
            httpx.Client(base_url=server.url, timeout=30) as bystander,
            httpx.Client(base_url=server.url, timeout=30) as admin_browser,
        ):
            _sign_in(browser, agent.username, "agent passphrase here")
            _sign_in(bystander, other.username, "other passphrase here")
            _sign_in(admin_browser, admin.username, "admin passphrase here")
            api = {"Authorization": f"Bearer {token}"}
            assert browser.get("/clients/").status_code == 200
            assert httpx.get(f"{server.url}/api/v1/clients", headers=api).status_code == 200

            page = admin_browser.get(f"/administration/users/{agent.pk}/")
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert csrf
            done = admin_browser.post(
                f"/administration/users/{agent.pk}/deactivate/",
                data={"csrfmiddlewaretoken": csrf[1]},
            )
            assert done.status_code == 302

            refused = browser.get("/clients/")
            assert refused.status_code == 302 and "/accounts/login/" in refused.headers["location"]
            assert httpx.get(f"{server.url}/api/v1/clients", headers=api).status_code == 401
            assert bystander.get("/clients/").status_code == 200  # nobody else's session

            # Reactivated, they sign in afresh: the old session and token stay ended.
            admin_browser.post(
                f"/administration/users/{agent.pk}/reactivate/",
                data={"csrfmiddlewaretoken": csrf[1]},
            )
            assert User.objects.get(pk=agent.pk).is_active
            assert browser.get("/clients/").status_code == 302
            assert httpx.get(f"{server.url}/api/v1/clients", headers=api).status_code == 401
    finally:
        server.stop()
    changes = [record["after"] for record in ledger("user.changed", agent.pk)]
    assert changes == [{"is_active": False}, {"is_active": True}]
    assert [r["user_id"] for r in ledger("api_token.revoked")] == [str(agent.pk)]
    assert [r["sessions"] for r in ledger("user.sessions_ended", agent.pk)] == [1]
    assert all(r["actor_id"] == str(admin.pk) for r in ledger("user.changed", agent.pk))


# --- API tokens ------------------------------------------------------------------------------


def test_a_token_is_shown_once_works_and_is_revoked(as_admin, make_user, admin_user):
    owner = make_user(Role.VIEWER)
    response = as_admin.post(
        "/administration/tokens/create/", {"user": str(owner.pk), "name": "Nightly <b>export</b>"}
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    shown = re.search(r'data-testid="new-token">(cd_[^<]+)<', page)
    assert shown and "Copy" in page and "not shown again" in page
    assert "Nightly &lt;b&gt;export&lt;/b&gt;" in page
    row = ApiToken.objects.get(user=owner)
    assert row.name == "Nightly <b>export</b>" and shown[1] not in str(
        ApiToken.objects.values().get()
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {shown[1]}")
    assert api.get("/api/v1/clients").status_code == 200
    listing = as_admin.get("/administration/tokens/").content.decode()
    assert shown[1] not in listing and row.prefix in listing and owner.username in listing

    as_admin.post(f"/administration/tokens/{row.pk}/revoke/")
    assert api.get("/api/v1/clients").status_code == 401
    again = as_admin.post(f"/administration/tokens/{row.pk}/revoke/", follow=True)
    assert "already revoked" in again.content.decode()
    assert ledger("api_token.created", row.pk)[0]["actor_id"] == str(admin_user.pk)
    assert len(ledger("api_token.revoked", row.pk)) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"user": "not-a-uuid", "name": "x"},
        {"user": str(uuid.uuid4()), "name": "x"},
        {"name": "no user"},
        {"user": "OWNER", "name": "n" * 101},
        {"user": "INACTIVE", "name": "x"},
    ],
    ids=["bad-id", "unknown", "missing", "long-name", "inactive"],
)
def test_a_bad_token_request_is_refused(as_admin, make_user, data):
    owner = make_user(Role.AGENT)
    inactive = make_user(Role.AGENT, is_active=False)
    data = {
        k: {"OWNER": str(owner.pk), "INACTIVE": str(inactive.pk)}.get(v, v) for k, v in data.items()
    }
    response = as_admin.post("/administration/tokens/create/", data)
    assert response.status_code == 422
    assert not ApiToken.objects.exists()


# --- Roles -----------------------------------------------------------------------------------


def test_the_roles_page_shows_each_permission_by_its_contract_name(as_admin):
    page = as_admin.get("/administration/roles/").content.decode()
    cells = dict(
        (name, re.findall(r"visually-hidden\">(yes|no)<", row))
        for name, row in re.findall(r'<th scope="row">([^<]+)</th>(.*?)</tr>', page, re.S)
    )
    # Columns: Administrator, Manager, Agent, Viewer, Integration.
    assert cells["Send a private message"] == ["yes", "yes", "yes", "no", "no"]
    assert cells["Can view message"] == ["yes", "yes", "yes", "yes", "yes"]
    assert cells["Manage message templates"] == ["yes", "yes", "no", "no", "no"]
    assert cells["Export message logs"] == ["yes", "yes", "no", "no", "no"]
    assert cells["Manage integration settings"] == ["yes", "no", "no", "no", "no"]
    assert cells["Issue client portal sessions"] == ["yes", "no", "no", "no", "yes"]
    assert cells["Can add client"] == ["yes", "yes", "yes", "no", "yes"]
    assert cells["Can change user"] == ["yes", "no", "no", "no", "no"]
    assert "<form" not in page.split("What each role may do")[1]  # read-only


def test_a_grant_made_by_hand_shows(as_admin):
    from django.contrib.auth.models import Permission

    Group.objects.get(name="Viewer").permissions.add(
        Permission.objects.get(codename="export_messages")
    )
    page = as_admin.get("/administration/roles/").content.decode()
    row = re.search(r'<th scope="row">Export message logs</th>(.*?)</tr>', page, re.S)
    assert row and re.findall(r"visually-hidden\">(yes|no)<", row[1]) == [
        "yes",
        "yes",
        "no",
        "yes",
        "no",
    ]
