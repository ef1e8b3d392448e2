"""Browser: the Messages page and its follow-up views, and every staff page at phone width."""

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clientdesk.followup.services import followup_overdue_run
from clientdesk.messaging.models import Message, ReplyState
from tests.e2e.helpers import compose, open_send_panel, send_button, toasts
from tests.followup.helpers import client_writes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def test_send_with_expects_a_reply_is_listed_under_awaiting_reply(
    page, login, make_staff, make_client, screenshot
):
    client = make_client(first_name="Käthe", last_name="Kruse")
    login(make_staff("Manager", first_name="Mona", last_name="Manager"))
    dialog = open_send_panel(page, client)
    compose(dialog, "Please send us a copy of your passport.")
    dialog.get_by_label("Expects a reply").check()
    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to")
    message = Message.objects.get()
    assert message.expects_reply and message.reply_state == ReplyState.AWAITING

    page.goto("/messages/")
    page.get_by_role("link", name="Awaiting reply").click()
    expect(page).to_have_url(re.compile(r"view=awaiting"))
    row = page.locator(".conversation").filter(has_text="Käthe Kruse")
    expect(row).to_contain_text("Awaiting reply · due in")
    screenshot(page, "awaiting-1280")

    # The client answers: the conversation moves from Awaiting reply to Needs response.
    client_writes(client, "Attached.")
    page.reload()
    expect(page.locator(".conversation")).to_have_count(0)
    page.get_by_role("link", name="Needs response").click()
    expect(page.locator(".conversation").filter(has_text="Käthe Kruse")).to_contain_text(
        "Needs response · due in"
    )

    # Opening a row opens the conversation panel.
    page.get_by_role("link", name="Käthe Kruse").click()
    panel = page.get_by_role("dialog", name="Send a message")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Please send us a copy of your passport.")


def test_overdue_view_shows_how_late(page, login, make_staff, make_client, agent_user):
    late = make_client(first_name="Lars", last_name="Late")
    from tests.followup.test_clocks import send

    message = send(
        agent_user,
        late,
        "Your utility bill?",
        expects_reply=True,
        reply_due_at=timezone.now() + timedelta(seconds=1),
    )
    time.sleep(1.2)
    followup_overdue_run()
    message.refresh_from_db()
    assert message.reply_state == ReplyState.OVERDUE
    login(make_staff("Viewer"))
    page.goto("/messages/?view=overdue")
    expect(page.locator(".conversation").filter(has_text="Lars Late")).to_contain_text(
        re.compile(r"Awaiting reply · overdue \d+ (min|h)")
    )


STAFF_PAGES = [
    "/clients/",
    "/clients/?page=2",
    "/messages/",
    "/messages/?view=awaiting",
    "/templates/",
    "/templates/new/",
    "/integrations/",
    "/settings/follow-up/",
    "/audit/",
]


def test_every_staff_page_fits_a_phone_and_sending_works_there(
    browser, live_server, make_staff, make_client, agent_user, screenshot
):
    admin = make_staff("Administrator", first_name="Ada", last_name="Admin")
    for i in range(30):
        make_client(
            first_name="Maximilian-Alexander",
            last_name=f"Schwarzenberger-Longname{i}",
            email=f"a.very.long.address.for.testing.{i}@subdomain.example.com",
        )
    target = make_client(first_name="Pia", last_name="Phone")
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(admin.username)
        page.get_by_label("Password").fill("e2e correct horse battery staple")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()
        for path in STAFF_PAGES:
            response = page.goto(path)
            if response.status == 404:
                continue  # a page another part of the product has not added yet
            page.wait_for_load_state("load")
            widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert widths[0] <= widths[1], f"{path} scrolls sideways at 390 px: {widths}"
            screenshot(page, "phone" + re.sub(r"\W+", "-", path))

        page.goto("/clients/?q=Pia")
        page.wait_for_load_state("load")
        dialog = open_send_panel(page, target)
        box = dialog.bounding_box()
        assert box["width"] >= PHONE["width"] - 1, "the panel fills the phone's screen"
        compose(dialog, "Sent from a phone")
        expect(send_button(dialog)).to_be_in_viewport()
        send_button(dialog).click()
        expect(toasts(page, "status")).to_contain_text("Sent to")
        screenshot(page, "phone-panel")
        assert Message.objects.filter(client=target, body="Sent from a phone").count() == 1
    finally:
        context.close()


def test_the_phone_top_bar_stays_one_line_on_a_short_page(browser, live_server, make_staff):
    viewer = make_staff("Viewer")
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(viewer.username)
        page.get_by_label("Password").fill("e2e correct horse battery staple")
        page.get_by_role("button", name="Log in").click()
        page.goto("/messages/")  # nearly empty: the grid must not stretch the bar
        height = page.locator(".sidebar").bounding_box()["height"]
        assert height < 60, f"the navigation bar is {height} px tall at 390 px"
    finally:
        context.close()


def test_the_sender_gets_a_notice_when_their_message_goes_overdue(
    page, login, make_staff, make_client, screenshot
):
    from clientdesk.followup.models import FollowUpDue
    from tests.followup.test_clocks import send

    sender = make_staff("Agent", first_name="Sam", last_name="Sender")
    other = make_staff("Agent", first_name="Olga", last_name="Other")
    late = make_client(first_name="Nora", last_name="Noreply")
    theirs = send(other, late, "And a bank statement?", expects_reply=True)
    mine = send(sender, late, "Your payslip?", expects_reply=True)
    login(sender)
    page.goto("/clients/")
    # A locator, not wait_for_function: the page's CSP refuses the eval that one would poll with.
    expect(page.locator("body[data-live-stream='open']")).to_have_count(1)
    # The other agent's message goes overdue first, then the sender's: events arrive in order,
    # so once the sender's notice shows, the other one has been handled (and made none).
    for message in (theirs, mine):
        FollowUpDue.objects.filter(message_id=message.pk).update(due_at=timezone.now())
        followup_overdue_run(now=timezone.now() + timedelta(seconds=1))
        assert Message.objects.get(pk=message.pk).reply_state == ReplyState.OVERDUE
    notice = toasts(page, "alert")
    expect(notice).to_contain_text("No reply from Nora Noreply yet: your message is overdue")
    expect(notice).to_have_count(1)
    screenshot(page, "overdue-notice")


def test_a_template_that_expects_a_reply_ticks_the_box(page, login, make_staff, make_client):
    from clientdesk.messaging.services.templates import template_create

    manager = make_staff("Manager", first_name="Mona", last_name="Manager")
    template_create(
        author=manager,
        name="KYC: passport copy",
        body="Please upload a copy of your passport, {{firstName}}.",
        language="en",
        expects_reply=True,
    )
    client = make_client(first_name="Kai", last_name="Kyc")
    login(make_staff("Agent"))
    dialog = open_send_panel(page, client)
    box = dialog.get_by_label("Expects a reply")
    expect(box).not_to_be_checked()
    dialog.get_by_placeholder("Use a template (search)…").fill("KYC: passport copy")
    expect(box).to_be_checked()
    send_button(dialog).click()
    expect(toasts(page, "status")).to_be_visible()
    message = Message.objects.get(client=client)
    assert message.expects_reply and message.reply_state == ReplyState.AWAITING
