"""The whole loop in two browser contexts side by side: staff sends, the client's cabinet shows it
live; the client reads and replies, the staff panel and Activity log show it live. No reloads."""

import io
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.e2e.helpers import compose, open_send_panel, send_button, sent_items

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def portal_link(live_server, client) -> str:
    out = io.StringIO()
    call_command("portal_link", client.external_id, "--base-url", live_server.url, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_send_read_reply_live_on_both_sides(
    browser, live_server, login, agent_user, client_obj, screenshot
) -> None:
    staff = login(agent_user)
    cabinet_context = browser.new_context(viewport=PHONE)
    cabinet = cabinet_context.new_page()
    errors: list[str] = []
    cabinet.on("pageerror", lambda error: errors.append(str(error)))
    try:
        cabinet.goto(portal_link(live_server, client_obj))
        expect(cabinet.get_by_role("heading", name=re.compile("^Messages"))).to_be_visible()
        expect(cabinet).to_have_url(re.compile(r"/portal/$"))  # the one-time code is gone
        expect(cabinet).to_have_title(re.compile(r"^Messages · "))

        dialog = open_send_panel(staff, client_obj)
        compose(dialog, "Your statement is ready, {{firstName}}.")
        send_button(dialog).click()
        expect(sent_items(dialog)).to_have_count(1)

        # The cabinet shows it without a reload: indicator, badge, tab title.
        expect(cabinet.get_by_role("button", name="1 new message")).to_be_visible()
        expect(cabinet.locator("#unread")).to_have_text("1 unread")
        expect(cabinet).to_have_title(re.compile(r"^\(1\) Messages"))
        message = cabinet.get_by_role("button", name=re.compile("Your statement is ready, Zoë"))
        expect(message).to_be_visible()
        screenshot(cabinet, "cabinet-phone-unread")

        # Opening it marks it read; the staff panel shows "Read hh:mm" without a reload.
        message.click()
        expect(cabinet.locator("#unread")).to_be_hidden()
        expect(cabinet).to_have_title(re.compile(r"^Messages · "))
        expect(dialog.locator(".read-at")).to_have_text(re.compile(r"^Read \d\d:\d\d$"))

        # The client replies with markup: text on both sides, live in panel and Activity log.
        cabinet.get_by_label("Your reply").fill("<b>Thanks</b> <img src=x onerror=alert(1)>")
        cabinet.get_by_role("button", name="Send reply").click()
        mine = cabinet.locator(".message.mine")
        expect(mine.locator(".who")).to_have_text("You")
        expect(mine.locator(".preview")).to_have_text("<b>Thanks</b> <img src=x onerror=alert(1)>")
        reply = sent_items(dialog).filter(has_text="<b>Thanks</b> <img src=x onerror=alert(1)>")
        expect(reply).to_be_visible()
        expect(reply).to_contain_text(f"From {client_obj.first_name}")
        expect(dialog.locator("img")).to_have_count(0)
        expect(cabinet.locator(".messages img")).to_have_count(0)
        screenshot(dialog, "staff-panel-with-reply")
        screenshot(cabinet, "cabinet-phone-replied")

        cabinet.set_viewport_size({"width": 1280, "height": 800})
        screenshot(cabinet, "cabinet-desktop")
    finally:
        cabinet_context.close()
    assert not errors


def test_the_activity_log_shows_a_reply_without_a_reload(
    browser, live_server, login, agent_user, client_obj
) -> None:
    staff = login(agent_user)
    staff.goto(f"/clients/{client_obj.id}/")
    log = staff.locator(".activity-items")
    expect(log).to_contain_text("No activity yet.")
    cabinet_context = browser.new_context(viewport=PHONE)
    cabinet = cabinet_context.new_page()
    try:
        cabinet.goto(portal_link(live_server, client_obj))
        expect(cabinet.get_by_label("Your reply")).to_be_visible()
        cabinet.get_by_label("Your reply").fill("A question <script>x()</script>")
        cabinet.get_by_role("button", name="Send reply").click()
        expect(log).to_contain_text("Reply from the client")
        expect(log).to_contain_text("A question <script>x()</script>")
    finally:
        cabinet_context.close()


def test_a_used_link_gets_a_clear_page(browser, live_server, client_obj) -> None:
    link = portal_link(live_server, client_obj)
    context = browser.new_context(viewport=PHONE)
    try:
        first = context.new_page()
        first.goto(link)
        expect(first.get_by_label("Your reply")).to_be_visible()
        second = context.new_page()
        second.goto(link)
        expect(
            second.get_by_text("This sign-in link was already used or has expired")
        ).to_be_visible()
        expect(second.get_by_role("heading", name="Sign in")).to_be_visible()
    finally:
        context.close()
