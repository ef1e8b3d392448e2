"""Browser: the staff UI defects a first-time user found, each with the behaviour that fixes it."""

import re

import pytest
from playwright.sync_api import expect

from clientdesk.delivery.models import OutgoingEndpoint
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.templates import template_create
from tests.e2e.helpers import compose, message_box, open_send_panel, send_button, toasts

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_counter_counts_characters_as_the_server_does(page, login, agent_user, client_obj):
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    counter = dialog.locator("#message-counter")
    message_box(dialog).fill("😀" * 2_600)  # 5,200 UTF-16 units, 2,600 characters
    expect(counter).to_have_text("2,600 / 5,000")
    expect(counter).not_to_have_class(re.compile(r"\bis-over\b"))
    expect(send_button(dialog)).to_be_enabled()
    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to")
    assert len(Message.objects.get().body) == 2_600

    message_box(dialog).fill("a" * 5_001)
    expect(counter).to_have_text("5,001 / 5,000")
    expect(counter).to_have_class(re.compile(r"\bis-over\b"))
    expect(send_button(dialog)).to_be_disabled()


def test_a_success_clears_the_earlier_errors_of_the_form(page, login, agent_user, client_obj):
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    page.route("**/messages/", lambda route: route.abort())
    box.fill("Hello there")
    expect(send_button(dialog)).to_be_enabled()
    send_button(dialog).click()
    expect(toasts(page, "alert")).to_have_count(1)
    page.unroute("**/messages/")
    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to")
    expect(toasts(page, "alert")).to_have_count(0)


def test_a_template_over_a_draft_keeps_the_draft(page, login, make_staff, client_obj):
    manager = make_staff("Manager")
    template_create(author=manager, name="KYC request", body="Please send your ID.", language="en")
    login(manager)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    expect(dialog.locator("#draft-kept")).to_be_hidden()
    expect(dialog.locator("#draft-restored")).to_be_hidden()
    box.fill("My long, careful draft")
    picker = dialog.get_by_placeholder("Use a template (search)…")
    picker.fill("KYC request")
    expect(dialog.locator("#draft-kept")).to_be_visible()
    dialog.get_by_role("button", name="Back to my draft").click()
    expect(box).to_have_value("My long, careful draft")
    expect(box).to_be_enabled()

    # Sent with the template, the draft comes back for the next message.
    picker.fill("KYC request")
    expect(dialog.locator("#compose-preview [data-preview-ok=true]")).to_be_visible()
    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to")
    expect(message_box(dialog)).to_have_value("My long, careful draft")
    assert Message.objects.get().body == "Please send your ID."


def test_the_panel_says_where_a_message_goes(page, login, agent_user, client_obj):
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    route = dialog.locator("#message-route")
    expect(route).to_have_text(
        "Goes to Zoë's online cabinet. No webhook or email is set up to tell Zoë it is there: "
        "Zoë sees it on signing in."
    )
    dialog.get_by_role("button", name="Close").click()
    OutgoingEndpoint.objects.create(
        pk=1, url="https://example.invalid/hook", enabled=True, email_enabled=True
    )
    dialog = open_send_panel(page, client_obj)
    expect(route).to_have_text(
        f"Goes to Zoë's online cabinet, to the outgoing webhook and by email to {client_obj.email}."
    )


def test_ctrl_enter_sends(page, login, agent_user, client_obj):
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    compose(dialog, "Sent from the keyboard")
    message_box(dialog).press("Control+Enter")
    expect(toasts(page, "status")).to_contain_text("Sent to")
    assert Message.objects.get().body == "Sent from the keyboard"


def test_a_page_past_the_end_says_so_and_links_to_the_first(page, login, agent_user, make_client):
    for _ in range(3):
        make_client()
    login(agent_user)
    page.goto("/clients/?page=999")
    expect(page.get_by_text("Page 999 is past the end of the list.")).to_be_visible()
    page.get_by_role("link", name="Go to the first page").click()
    expect(page.get_by_role("button", name="Actions")).to_have_count(3)


def test_an_integrations_form_error_keeps_the_sidebar_on_integrations(page, login, make_staff):
    login(make_staff("Administrator"))
    page.goto("/integrations/")
    page.get_by_label("Endpoint URL").fill("not a url")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Integrations")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Clients")).not_to_have_attribute("aria-current", "page")
