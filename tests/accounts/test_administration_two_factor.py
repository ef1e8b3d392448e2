"""Two-factor sign-in: enrolment with a real code computed from the secret the page shows, the
second step at login, replayed codes, recovery codes (once each, hashed at rest), the lockout
that bounds both steps, and the requirement for administrators."""

import re
from base64 import b32decode
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientdesk.accounts.models import RecoveryCode, User
from clientdesk.accounts.roles import Role
from clientdesk.accounts.services import api_token_create
from clientdesk.accounts.two_factor import recovery_code_digest
from clientdesk.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def code_at(secret: bytes, step: int) -> str:
    """The code an authenticator app shows during time step `step`."""
    totp = TOTP(secret, step=30, t0=0, digits=6, drift=0)
    totp.time = step * 30 + 1
    return f"{totp.token():06d}"


def current_step() -> int:
    return TOTP(b"x", step=30).t()


def records(action: str, user: User) -> list[dict[str, Any]]:
    rows = AuditEntry.objects.filter(action=action, object_id=str(user.pk)).order_by("id")
    return [{"actor_id": row.actor_id, **row.data} for row in rows]


def enrol(client: Client) -> tuple[bytes, list[str]]:
    """What a person does: open the page, read the secret, type the app's code. Returns the
    secret and the recovery codes the page showed."""
    page = client.get("/accounts/profile/two-factor/").content.decode()
    assert "<svg" in page and "QR code" in page
    shown = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert shown, page
    secret = b32decode(shown[1] + "=" * (-len(shown[1]) % 8))
    done = client.post(
        "/accounts/profile/two-factor/",
        {"action": "enable", "code": code_at(secret, current_step())},
    )
    assert done.status_code == 302, done.content.decode()
    codes_page = client.get("/accounts/profile/two-factor/").content.decode()
    codes = re.findall(r"<li><code>([A-Z0-9-]{19})</code></li>", codes_page)
    assert len(codes) == 10
    return secret, codes


def password_step(client: Client, user: User, password: str = PASSWORD) -> Any:
    return client.post("/accounts/login/", {"username": user.username, "password": password})


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


def test_enrolment_with_a_real_code_shows_recovery_codes_once_and_stores_only_hashes(
    agent_client, agent
):
    secret, codes = enrol(agent_client)
    device = TOTPDevice.objects.get(user=agent)
    assert device.confirmed and device.bin_key == secret
    # Shown once: the next visit lists none.
    again = agent_client.get("/accounts/profile/two-factor/").content.decode()
    assert "<li><code>" not in again and "Recovery codes left: <strong" in again
    stored = list(RecoveryCode.objects.filter(user=agent).values_list("digest", flat=True))
    plain = [c.replace("-", "") for c in codes]
    assert sorted(stored) == sorted(recovery_code_digest(c) for c in plain)
    assert not set(plain) & set(stored)
    assert "On: you sign in" in agent_client.get("/accounts/profile/").content.decode()
    assert records("user.two_factor_enabled", agent) == [
        {"actor_id": str(agent.pk), "username": agent.username, "recovery_codes": 10}
    ]


def test_a_wrong_or_foreign_code_does_not_enrol(agent_client, agent):
    page = agent_client.get("/accounts/profile/two-factor/").content.decode()
    shown = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert shown
    secret = b32decode(shown[1] + "=" * (-len(shown[1]) % 8))
    step = current_step()
    for code in (
        code_at(b"another secret!!", step),
        code_at(secret, step - 5),  # long expired
        "١٢٣٤٥٦",  # other scripts' digits: int() would take them
        "12_345",
        "",
        "9" * 10_000,
    ):
        response = agent_client.post(
            "/accounts/profile/two-factor/", {"action": "enable", "code": code}
        )
        assert response.status_code == 422, code
    assert not TOTPDevice.objects.filter(user=agent).exists()
    assert not records("user.two_factor_enabled", agent)


def test_sign_in_asks_for_the_code_and_a_replayed_code_is_refused(client, agent):
    client.force_login(agent)
    secret, _ = enrol(client)
    client.post("/accounts/logout/")
    enrolled_at = TOTPDevice.objects.get(user=agent).last_t

    first = password_step(client, agent)
    assert first.status_code == 302 and first["Location"] == "/accounts/login/code/"
    # The password alone signs nobody in.
    assert client.get("/clients/")["Location"].startswith("/accounts/login/")
    # The code used to enrol is spent.
    spent = client.post("/accounts/login/code/", {"code": code_at(secret, enrolled_at)})
    assert spent.status_code == 422

    TOTPDevice.objects.filter(user=agent).update(throttling_failure_count=0)
    code = code_at(secret, enrolled_at + 1)
    done = client.post("/accounts/login/code/", {"code": code})
    assert done.status_code == 302 and done["Location"] == "/clients/"
    assert client.get("/clients/").status_code == 200
    client.post("/accounts/logout/")

    password_step(client, agent)
    TOTPDevice.objects.filter(user=agent).update(throttling_failure_count=0)
    replayed = client.post("/accounts/login/code/", {"code": code})
    assert replayed.status_code == 422 and "not valid" in replayed.content.decode()
    assert client.get("/clients/")["Location"].startswith("/accounts/login/")


def test_a_wrong_password_never_reaches_the_second_step(client, agent):
    client.force_login(agent)
    enrol(client)
    client.post("/accounts/logout/")
    refused = password_step(client, agent, password="wrong")
    assert refused.status_code == 200
    assert "clientdesk_2fa_pending" not in client.session
    page = client.get("/accounts/login/code/").content.decode()
    assert "Your sign-in expired" in page


def test_recovery_codes_work_once_each(client, agent):
    client.force_login(agent)
    _, codes = enrol(client)
    client.post("/accounts/logout/")

    password_step(client, agent)
    used = client.post("/accounts/login/code/", {"code": codes[3].lower().replace("-", " ")})
    assert used.status_code == 302
    landed = client.get("/clients/")
    assert landed.status_code == 200
    assert "You signed in with a recovery code; 9 left." in landed.content.decode()
    assert RecoveryCode.objects.filter(user=agent, used_at__isnull=True).count() == 9
    assert records("user.recovery_code_used", agent) == [
        {"actor_id": str(agent.pk), "username": agent.username, "left": 9}
    ]
    client.post("/accounts/logout/")

    password_step(client, agent)
    again = client.post("/accounts/login/code/", {"code": codes[3]})
    assert again.status_code == 422
    assert client.get("/clients/")["Location"].startswith("/accounts/login/")
    assert len(records("user.recovery_code_used", agent)) == 1


def test_the_lockout_bounds_the_second_step(client, agent, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client.force_login(agent)
    secret, _ = enrol(client)
    client.post("/accounts/logout/")
    password_step(client, agent)
    for _ in range(2):
        wrong = client.post("/accounts/login/code/", {"code": "000000"})
        assert wrong.status_code == 422
    locked = client.post("/accounts/login/code/", {"code": "000000"})
    assert locked.status_code in (403, 429)
    assert "Too many failed logins" in locked.content.decode()
    assert AccessAttempt.objects.get(username=agent.username).failures_since_start == 3

    # Even the right code, and the right password, are refused while locked.
    TOTPDevice.objects.filter(user=agent).update(throttling_failure_count=0)
    step = TOTPDevice.objects.get(user=agent).last_t + 1
    right = client.post("/accounts/login/code/", {"code": code_at(secret, step)})
    assert "Too many failed logins" in right.content.decode()
    assert client.get("/clients/")["Location"].startswith("/accounts/login/")
    fresh = Client()
    assert "Too many failed logins" in password_step(fresh, agent).content.decode()


def test_the_password_step_does_not_reset_the_count_of_wrong_codes(client, agent, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client.force_login(agent)
    enrol(client)
    client.post("/accounts/logout/")
    for _ in range(3):
        assert password_step(client, agent).status_code == 302  # the password is right
        client.post("/accounts/login/code/", {"code": "111111"})
    assert "Too many failed logins" in password_step(client, agent).content.decode()


def test_a_slow_second_step_expires(client, agent, settings):
    client.force_login(agent)
    secret, _ = enrol(client)
    client.post("/accounts/logout/")
    password_step(client, agent)
    settings.CLIENTDESK_2FA_PENDING_SECONDS = -1
    step = TOTPDevice.objects.get(user=agent).last_t + 1
    late = client.post("/accounts/login/code/", {"code": code_at(secret, step)})
    assert "Your sign-in expired" in late.content.decode()
    assert client.get("/clients/")["Location"].startswith("/accounts/login/")


def test_turning_it_off_needs_a_current_code(agent_client, agent):
    secret, _ = enrol(agent_client)
    refused = agent_client.post(
        "/accounts/profile/two-factor/", {"action": "disable", "code": "123456"}
    )
    assert refused.status_code == 422 and TOTPDevice.objects.filter(user=agent).exists()
    TOTPDevice.objects.filter(user=agent).update(throttling_failure_count=0)
    step = TOTPDevice.objects.get(user=agent).last_t + 1
    done = agent_client.post(
        "/accounts/profile/two-factor/", {"action": "disable", "code": code_at(secret, step)}
    )
    assert done.status_code == 302
    assert not TOTPDevice.objects.filter(user=agent).exists()
    assert not RecoveryCode.objects.filter(user=agent).exists()
    assert records("user.two_factor_disabled", agent)[0]["actor_id"] == str(agent.pk)


def test_new_recovery_codes_replace_the_old(agent_client, agent):
    secret, old = enrol(agent_client)
    step = TOTPDevice.objects.get(user=agent).last_t + 1
    agent_client.post(
        "/accounts/profile/two-factor/", {"action": "renew", "code": code_at(secret, step)}
    )
    page = agent_client.get("/accounts/profile/two-factor/").content.decode()
    new = re.findall(r"<li><code>([A-Z0-9-]{19})</code></li>", page)
    assert len(new) == 10 and not set(new) & set(old)
    digests = set(RecoveryCode.objects.filter(user=agent).values_list("digest", flat=True))
    assert recovery_code_digest(old[0].replace("-", "")) not in digests
    assert records("user.recovery_codes_renewed", agent)


def test_enrolling_ends_the_users_other_sessions(agent, client):
    elsewhere = Client()
    elsewhere.force_login(agent)
    assert elsewhere.get("/clients/").status_code == 200
    client.force_login(agent)
    enrol(client)
    assert elsewhere.get("/clients/")["Location"].startswith("/accounts/login/")
    assert client.get("/clients/").status_code == 200


# --- Required for administrators -------------------------------------------------------------


@pytest.fixture
def required(settings):
    settings.CLIENTDESK_REQUIRE_2FA_FOR = ["Administrator"]


@pytest.mark.parametrize(
    ("env", "required"),
    [
        ({}, ["Administrator"]),
        ({"DEBUG": "1"}, []),
        ({"CLIENTDESK_REQUIRE_2FA_FOR": ""}, []),
        ({"DEBUG": "1", "CLIENTDESK_REQUIRE_2FA_FOR": "Administrator, Manager"}, None),
    ],
    ids=["production", "debug", "turned-off", "named"],
)
def test_the_production_default_requires_it_of_administrators(env, required, tmp_path):
    """Read in a fresh process, as a deployment reads its environment."""
    import json
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "CLIENTDESK_REQUIRE_2FA_FOR"}}
    out = subprocess.run(
        [sys.executable, "-c", "import json; from clientdesk import settings as s; "
         "print(json.dumps(s.CLIENTDESK_REQUIRE_2FA_FOR))"],
        env={**base, "CLIENTDESK_VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == (required if required is not None else ["Administrator", "Manager"])


@pytest.mark.usefixtures("required")
@pytest.mark.parametrize("who", ["administrator", "superuser"])
def test_an_administrator_without_it_is_sent_to_enrol_before_any_page(client, make_user, who):
    if who == "superuser":
        user = make_user(None, is_superuser=True, password=PASSWORD)
    else:
        user = make_user(Role.ADMINISTRATOR, password=PASSWORD)
    signed_in = password_step(client, user)
    assert signed_in.status_code == 302
    for url in ("/clients/", "/administration/", "/accounts/profile/", "/audit/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == "/accounts/profile/two-factor/?required=1", url
    htmx = client.get("/clients/", HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"] == "/accounts/profile/two-factor/?required=1"
    api = client.get("/api/v1/clients")
    assert api.status_code == 403 and api["Content-Type"] == "application/problem+json"
    page = client.get("/accounts/profile/two-factor/?required=1").content.decode()
    assert "Your role requires two-factor sign-in" in page
    # A token is not a session: integrations keep working.
    _, token = api_token_create(user=user)
    assert Client().get("/api/v1/clients", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    enrol(client)
    assert client.get("/clients/").status_code == 200
    assert client.get("/administration/").status_code == 200


@pytest.mark.usefixtures("required")
def test_other_roles_are_not_asked(client, agent):
    client.force_login(agent)
    assert client.get("/clients/").status_code == 200


@pytest.mark.usefixtures("required")
def test_an_enrolled_administrators_session_without_the_second_step_is_ended(client, make_user):
    admin = make_user(Role.ADMINISTRATOR, password=PASSWORD)
    client.force_login(admin)
    secret, _ = enrol(client)
    stale = Client()
    stale.force_login(admin)  # a session that never passed the second step
    response = stale.get("/clients/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in stale.session
    # Signing in properly works.
    password_step(stale, admin)
    step = TOTPDevice.objects.get(user=admin).last_t + 1
    stale.post("/accounts/login/code/", {"code": code_at(secret, step)})
    assert stale.get("/clients/").status_code == 200


def test_an_administrator_turns_it_off_for_someone_who_lost_their_phone(client, make_user, agent):
    admin = make_user(Role.ADMINISTRATOR)
    other = Client()
    other.force_login(agent)
    enrol(other)
    client.force_login(admin)
    page = client.get(f"/administration/users/{agent.pk}/").content.decode()
    assert 'id="person-2fa">On<' in page
    client.post(f"/administration/users/{agent.pk}/two-factor/reset/")
    assert not TOTPDevice.objects.filter(user=agent).exists()
    assert records("user.two_factor_disabled", agent)[0]["actor_id"] == str(admin.pk)
    listing = client.get("/administration/").content.decode()
    assert "<td>On</td>" not in listing


def test_a_nul_in_the_code_is_refused_before_the_view(client, agent):
    client.force_login(agent)
    enrol(client)
    client.post("/accounts/logout/")
    password_step(client, agent)
    response = client.post("/accounts/login/code/", {"code": "12\x003456"})
    assert response.status_code == 422
    assert client.get("/clients/")["Location"].startswith("/accounts/login/")


def test_the_django_admin_login_cannot_skip_the_second_step(client, make_user):
    staff = make_user(Role.AGENT, is_staff=True, password=PASSWORD)
    client.force_login(staff)
    secret, _ = enrol(client)
    client.post("/accounts/logout/")
    # The admin's own form is not offered: sign-in goes through the two steps, then back.
    form = client.get("/admin/login/?next=/admin/")
    assert form.status_code == 302 and form["Location"] == "/accounts/login/?next=/admin/"
    posted = client.post(
        "/admin/login/?next=/admin/", {"username": staff.username, "password": PASSWORD}
    )
    assert posted.status_code == 302 and posted["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
    first = client.post(
        "/accounts/login/?next=/admin/", {"username": staff.username, "password": PASSWORD}
    )
    assert first["Location"] == "/accounts/login/code/"
    step = TOTPDevice.objects.get(user=staff).last_t + 1
    done = client.post("/accounts/login/code/", {"code": code_at(secret, step)})
    assert done["Location"] == "/admin/"


def test_a_signed_in_non_staff_user_is_refused_the_admin_without_a_loop(client, agent):
    client.force_login(agent)
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    assert len(response.redirect_chain) == 1
