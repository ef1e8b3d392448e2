"""The Administration area and two-factor sign-in in a real browser: an administrator invites a
user, who sets a password from the e-mail's link and signs in; an administrator enrols an
authenticator and signs in with the second step."""

import re
from base64 import b32decode
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from clientdesk.accounts.models import ApiToken, User
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.e2e


def code_at(secret: bytes, step: int) -> str:
    totp = TOTP(secret, step=30, t0=0, digits=6, drift=0)
    totp.time = step * 30 + 1
    return f"{totp.token():06d}"


def test_an_administrator_invites_a_user_who_sets_a_password_and_signs_in(
    page: Any, login: Callable[[User], Any], make_staff: Callable[..., User], browser: Any,
    live_server: Any, screenshot: Callable[[Any, str], Any],
) -> None:  # fmt: skip
    admin = make_staff("Administrator", first_name="Ada", last_name="Admin")
    login(admin)
    page.get_by_role("link", name="Administration").click()
    expect(page.get_by_role("heading", name="Administration", level=1)).to_be_visible()
    page.get_by_label("E-mail", exact=True).fill("nia.new@example.com")
    page.get_by_label("First name").fill("Nia")
    page.get_by_label("Last name").fill("New <b>bold</b>")
    page.get_by_label("Agent", exact=True).check()
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#toasts")).to_contain_text("Invitation sent to nia.new@example.com")
    expect(page.locator("#person-status")).to_have_text("Invited: has not set a password yet")
    screenshot(page, "invited")

    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+/accounts/invitation/\S+/", mail.outbox[0].body)
    assert link, mail.outbox[0].body

    invitee_context = browser.new_context(base_url=live_server.url)
    try:
        invitee = invitee_context.new_page()
        invitee.goto(link[0])
        expect(invitee.get_by_role("heading", name="Set your password")).to_be_visible()
        invitee.get_by_label("New password", exact=True).fill(PASSWORD)
        invitee.get_by_label("New password again").fill(PASSWORD)
        invitee.get_by_role("button", name="Set password").click()
        expect(invitee.get_by_role("status")).to_contain_text("Your password is set")
        invitee.get_by_label("Username").fill("nia.new@example.com")
        invitee.get_by_label("Password").fill(PASSWORD)
        invitee.get_by_role("button", name="Log in").click()
        expect(invitee.get_by_role("heading", name="Clients", level=1)).to_be_visible()
        expect(invitee.locator(".whoami")).to_contain_text("Agent")
        # An Agent has no Administration area.
        expect(invitee.get_by_role("link", name="Administration")).to_have_count(0)
        # The link worked once.
        invitee.goto(link[0])
        expect(invitee.get_by_role("alert")).to_contain_text("no longer works")
    finally:
        invitee_context.close()

    # The administrator sees them signed in, and gives them an API token, shown once.
    page.goto("/administration/")
    row = page.get_by_role("row").filter(has_text="nia.new@example.com")
    expect(row).to_contain_text("Agent")
    expect(row.get_by_role("cell").nth(4)).to_have_text("Yes")
    expect(row).to_contain_text("New <b>bold</b>")
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("User").select_option(label="nia.new@example.com (Nia New <b>bold</b>)")
    page.get_by_label("Name").fill("Nia's script")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_test_id("new-token")
    expect(shown).to_have_text(re.compile(r"^cd_"))
    token = shown.inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token
    # The token lives in that one response (never in a session or the database): opening the
    # page again does not show it.
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    row = page.get_by_role("row").filter(has_text="Nia's script")
    row.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(page.locator("#toasts")).to_contain_text("revoked")
    assert ApiToken.objects.get(name="Nia's script").revoked_at is not None


def test_an_administrator_enrols_and_signs_in_with_the_second_step(
    page: Any, make_staff: Callable[..., User], settings: Any,
    screenshot: Callable[[Any, str], Any],
) -> None:  # fmt: skip
    settings.CLIENTDESK_REQUIRE_2FA_FOR = ["Administrator"]
    admin = make_staff("Administrator", first_name="Ada", last_name="Admin")
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # Required: enrolment comes before any other page.
    expect(page).to_have_url(re.compile(r"/accounts/profile/two-factor/\?required=1$"))
    expect(page.get_by_text("Your role requires two-factor sign-in")).to_be_visible()
    page.goto("/clients/")
    expect(page).to_have_url(re.compile(r"/accounts/profile/two-factor/"))
    expect(page.locator(".qr svg")).to_be_visible()
    screenshot(page, "enrol")
    written = page.locator("#totp-secret").inner_text()
    secret = b32decode(written + "=" * (-len(written) % 8))
    step = TOTP(secret, step=30).t()
    page.get_by_label("Enter the 6-digit code").fill(code_at(secret, step))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.locator(".recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="Clients").click()
    expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()
    page.get_by_role("button", name="Log out").click()

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    TOTPDevice.objects.filter(user=admin).update(throttling_failure_count=0)
    next_step = TOTPDevice.objects.get(user=admin).last_t + 1
    page.get_by_label("Code from your authenticator app").fill(code_at(secret, next_step))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()
    page.get_by_role("link", name="Administration").click()
    row = page.get_by_role("row").filter(has_text=admin.username)
    expect(row.get_by_role("cell").nth(6)).to_have_text("On")
    screenshot(page, "users")


def test_deactivation_is_confirmed_first_and_ends_the_users_session(
    page: Any, login: Callable[[User], Any], make_staff: Callable[..., User], browser: Any,
    live_server: Any, screenshot: Callable[[Any, str], Any],
) -> None:  # fmt: skip
    admin = make_staff("Administrator", first_name="Ada", last_name="Admin")
    agent = make_staff("Agent", first_name="Alex", last_name="Agent")
    agent_context = browser.new_context(base_url=live_server.url)
    try:
        agent_page = agent_context.new_page()
        agent_page.goto("/accounts/login/")
        agent_page.get_by_label("Username").fill(agent.username)
        agent_page.get_by_label("Password").fill(PASSWORD)
        agent_page.get_by_role("button", name="Log in").click()
        expect(agent_page.get_by_role("heading", name="Clients", level=1)).to_be_visible()

        login(admin)
        page.goto(f"/administration/users/{agent.pk}/")
        screenshot(page, "deactivate")
        confirm = page.get_by_role("button", name=f"Deactivate {agent.username}")
        expect(confirm).to_be_hidden()
        page.get_by_text("Deactivate…").click()
        expect(page.get_by_text("their sessions end now")).to_be_visible()
        confirm.click()
        expect(page.locator("#toasts")).to_contain_text("Deactivated")
        expect(page.locator("#person-status")).to_have_text("Deactivated")

        agent_page.reload()
        expect(agent_page.get_by_role("heading", name="Log in")).to_be_visible()
    finally:
        agent_context.close()
