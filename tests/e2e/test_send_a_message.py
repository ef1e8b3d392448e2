"""The "Send a message" journey, in a real browser.

Accessible names are those docs/ARCHITECTURE.md ("UI") promises; every send is also checked in
the database, because a toast alone does not prove what was stored.
"""

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.messaging.models import Message
from tests.e2e.helpers import (
    PREVIEW_URL,
    SEND_URL,
    SendTracker,
    actions_button,
    compose,
    covered_by,
    exposed_text,
    message_box,
    open_send_panel,
    preview,
    row_for,
    send_button,
    sent_items,
    stored,
    toasts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Login = Callable[[User], Page]
MakeStaff = Callable[..., User]
MakeClient = Callable[..., Client]


def test_agent_sends_a_personalised_message_and_finds_it_in_the_activity_log(
    page: Page,
    login: Login,
    agent_user: User,
    client_obj: Client,
    make_client: MakeClient,
    screenshot: Callable[[Any, str], Any],
) -> None:
    make_client(first_name="Bob", last_name="Brown")
    make_client(first_name="Carla", last_name="Costa")
    login(agent_user)

    # 1. Locate the client: the search filters the table as you type, without a page load.
    expect(page.get_by_role("row")).to_have_count(1 + 3)
    page.evaluate("window.__samePage = true")
    page.get_by_label("Search clients").press_sequentially("zoe mul", delay=40)
    expect(page.get_by_role("row")).to_have_count(1 + 1)
    expect(row_for(page, client_obj)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/clients/\?q=zoe(\+|%20)mul$"))
    assert page.evaluate("window.__samePage") is True, "the search reloaded the page"

    # Actions → Send a message opens the panel for that client, cursor in the text box.
    dialog = open_send_panel(page, client_obj)
    expect(dialog).to_contain_text("Zoë Müller")
    box = message_box(dialog)
    expect(box).to_be_focused()
    expect(send_button(dialog)).to_be_disabled()  # nothing to send yet
    expect(sent_items(dialog)).to_have_count(0)

    # 2./3. Compose with a variable: the preview shows what Zoë receives; send.
    compose(dialog, "Hello {{firstName}}, your documents are approved.")
    expect(preview(dialog)).to_contain_text("Hello Zoë, your documents are approved.")
    send_button(dialog).click()

    toast = toasts(page, "status").filter(has_text="Sent to Zoë Müller's cabinet.")
    expect(toast).to_be_visible()
    expect(sent_items(dialog)).to_have_count(1)
    sent = sent_items(dialog).first
    expect(sent.locator(".message-body")).to_have_text("Hello Zoë, your documents are approved.")
    expect(sent).to_contain_text("Alex Agent")
    expect(box).to_have_value("")  # ready for the next message
    expect(dialog.locator("#message-counter")).to_have_text("0 / 5,000")
    screenshot(page, "panel-after-send")

    [message] = stored(client_obj)
    assert message.sender == agent_user
    assert message.body == "Hello Zoë, your documents are approved."
    assert message.source == "Hello {{firstName}}, your documents are approved."
    assert Message.objects.count() == 1

    # Closing the panel puts focus back on the Actions button that opened it.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(actions_button(page, client_obj)).to_be_focused()

    # 4. Re-open the panel: the sent message is listed there.
    dialog = open_send_panel(page, client_obj)
    expect(sent_items(dialog)).to_have_count(1)
    expect(sent_items(dialog).first).to_contain_text("Hello Zoë, your documents are approved.")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(actions_button(page, client_obj)).to_be_focused()

    # ...and the client's details drawer has it in the Activity log, with sender and time.
    row_for(page, client_obj).get_by_role("link", name="Zoë Müller").click()
    drawer = page.get_by_role("dialog", name="Zoë Müller")
    expect(drawer).to_be_visible()
    activity = drawer.get_by_role("region", name="Activity log")
    expect(activity.get_by_role("heading", name="Activity log")).to_be_visible()
    entry = activity.get_by_role("listitem").filter(has_text="Hello Zoë")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("Message sent")
    expect(entry).to_contain_text("Alex Agent")
    expect(entry).not_to_contain_text("{{firstName}}")
    expect(entry.locator("time[datetime]")).to_have_count(1)
    screenshot(page, "details-drawer")

    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(row_for(page, client_obj).get_by_role("link", name="Zoë Müller")).to_be_focused()


def test_viewer_sees_clients_but_cannot_send(
    page: Page, login: Login, make_staff: MakeStaff, client_obj: Client
) -> None:
    viewer = make_staff("Viewer")
    login(viewer)

    expect(row_for(page, client_obj)).to_be_visible()
    actions_button(page, client_obj).click()
    menu = page.get_by_role("menu", name="Actions for Zoë Müller")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("menuitem", name="View details")).to_be_visible()
    expect(page.get_by_role("menuitem", name="Send a message")).to_have_count(0)

    # The details drawer offers no "Send a message" either, but shows the activity log.
    menu.get_by_role("menuitem", name="View details").click()
    drawer = page.get_by_role("dialog", name="Zoë Müller")
    expect(drawer.get_by_role("region", name="Activity log")).to_contain_text("No activity yet.")
    expect(drawer.get_by_text("Send a message")).to_have_count(0)

    # Going to the panel's address directly is refused.
    response = page.goto(f"/clients/{client_obj.id}/send/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Permission denied")
    expect(page.get_by_placeholder("Type your message...")).to_have_count(0)

    # So is posting to the send endpoint with a valid session and CSRF token.
    status = page.evaluate(
        """async (url) => {
          const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
          const body = new URLSearchParams({body: "Hi", idempotency_key: crypto.randomUUID()});
          const r = await fetch(url, {method: "POST", body, headers: {"X-CSRFToken": token}});
          return r.status;
        }""",
        f"/clients/{client_obj.id}/messages/",
    )
    assert status == 403
    assert stored(client_obj) == []


def test_unknown_variable_is_refused_with_an_alert_and_the_text_is_kept(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)

    # The live preview refuses it before sending: an alert naming the variable, Send disabled.
    box.fill("Hi {{nickname}}, see you soon.")
    expect(preview(dialog).get_by_role("alert")).to_contain_text("{{nickname}}")
    expect(send_button(dialog)).to_be_disabled()

    # Sent anyway, before the preview has caught up with the last edit (a fast typist): the
    # server refuses it with an alert toast naming the variable, and the text stays.
    compose(dialog, "Hi {{firstName}}, see you soon.")
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(PREVIEW_URL, hold)
    box.fill("Hi {{nickname}}, see you soon.")
    send_button(dialog).click()
    alert = toasts(page, "alert")
    expect(alert).to_have_count(1)
    expect(alert).to_contain_text("{{nickname}}")
    expect(alert).to_contain_text("unknown variable")
    expect(dialog.locator("#compose-error")).to_contain_text("{{nickname}}")
    expect(box).to_have_value("Hi {{nickname}}, see you soon.")
    expect(toasts(page, "status")).to_have_count(0)
    expect(sent_items(dialog)).to_have_count(0)
    assert stored(client_obj) == []
    page.unroute(PREVIEW_URL)  # lets the held preview through: it refuses the text too
    expect(preview(dialog).get_by_role("alert")).to_contain_text("{{nickname}}")
    expect(send_button(dialog)).to_be_disabled()

    # Fix the text; Send works and the error goes away.
    compose(dialog, "Hi {{firstName}}, see you soon.")
    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet.")
    expect(sent_items(dialog)).to_have_count(1)
    expect(sent_items(dialog).first).to_contain_text("Hi Zoë, see you soon.")
    expect(dialog.locator("#compose-error")).to_be_hidden()
    [message] = stored(client_obj)
    assert message.body == "Hi Zoë, see you soon."
    assert message.sender == agent_user


def test_double_click_on_send_stores_one_message(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    tracker = SendTracker(page)
    dialog = open_send_panel(page, client_obj)
    compose(dialog, "Only once, {{firstName}}.")
    send_button(dialog).dblclick()

    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet.")
    assert tracker.wait_until_idle() >= 1  # the second click may or may not get through...
    expect(sent_items(dialog)).to_have_count(1)  # ...either way there is one message
    expect(toasts(page, "status")).to_have_count(1)
    assert [m.body for m in stored(client_obj)] == ["Only once, Zoë."]


def test_send_shows_a_loading_indicator_and_ignores_sends_while_busy(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    held: list[Route] = []

    def hold(route: Route) -> None:  # keep the request in flight until the test lets it go
        held.append(route)

    page.route(SEND_URL, hold)
    tracker = SendTracker(page)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    compose(dialog, "Patience, {{firstName}}.")
    send_button(dialog).click()

    expect(send_button(dialog)).to_be_disabled()
    expect(send_button(dialog).locator(".spinner")).to_be_visible()
    box.press("Control+Enter")  # a second try while the first is in flight does nothing
    assert len(held) == 1

    held[0].continue_()
    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet.")
    expect(send_button(dialog).locator(".spinner")).to_be_hidden()
    expect(box).to_have_value("")
    assert tracker.wait_until_idle() == 1
    assert [m.body for m in stored(client_obj)] == ["Patience, Zoë."]


def test_two_racing_posts_of_one_compose_store_one_message(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    """What a double submit that slips past the disabled button does: two requests carrying
    the same idempotency key, in flight at the same time."""
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    message_box(dialog).fill("Racing, {{firstName}}.")
    statuses = dialog.locator("#compose").evaluate(
        """async (form) => {
          const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
          const post = () => fetch(form.action, {
            method: "POST", body: new URLSearchParams(new FormData(form)),
            headers: {"X-CSRFToken": token, "HX-Request": "true"},
          }).then((r) => r.status);
          return Promise.all([post(), post()]);
        }"""
    )
    assert statuses == [200, 200]
    assert [m.body for m in stored(client_obj)] == ["Racing, Zoë."]


def test_send_after_a_network_failure_retries_without_duplicating(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    failures = {"left": 1}

    def drop_first_post(route: Route) -> None:
        if route.request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            route.abort()
        else:
            route.continue_()

    page.route(SEND_URL, drop_first_post)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    compose(dialog, "Network test for {{firstName}}.")
    send_button(dialog).click()

    alert = toasts(page, "alert")
    expect(alert).to_contain_text("Could not reach Clientdesk")
    expect(box).to_have_value("Network test for {{firstName}}.")
    expect(send_button(dialog)).to_be_enabled()
    assert failures["left"] == 0
    assert stored(client_obj) == []

    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet.")
    expect(sent_items(dialog)).to_have_count(1)
    assert [m.body for m in stored(client_obj)] == ["Network test for Zoë."]


def test_retry_after_a_lost_response_replays_instead_of_sending_twice(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    """The server stored the message but the answer never reached the browser."""
    login(agent_user)
    losses = {"left": 1}

    def lose_first_answer(route: Route) -> None:
        if route.request.method == "POST" and losses["left"]:
            losses["left"] -= 1
            route.fetch()  # the server handles it...
            route.abort()  # ...but the browser sees a network error
        else:
            route.continue_()

    page.route(SEND_URL, lose_first_answer)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    compose(dialog, "Lost answer for {{firstName}}.")
    send_button(dialog).click()

    expect(toasts(page, "alert")).to_contain_text("Could not reach Clientdesk")
    expect(box).to_have_value("Lost answer for {{firstName}}.")
    assert len(stored(client_obj)) == 1  # it did arrive

    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet.")
    expect(sent_items(dialog)).to_have_count(1)
    assert [m.body for m in stored(client_obj)] == ["Lost answer for Zoë."]


def test_message_text_is_shown_as_text_not_html(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    text = 'Hi {{firstName}} <img src=x onerror="window.__pwned = 1"> & <b>bold</b>'
    rendered = 'Hi Zoë <img src=x onerror="window.__pwned = 1"> & <b>bold</b>'
    dialog = open_send_panel(page, client_obj)
    compose(dialog, text)
    expect(preview(dialog).locator(".message-body")).to_have_text(rendered)
    send_button(dialog).click()
    expect(sent_items(dialog).first.locator(".message-body")).to_have_text(rendered)
    page.keyboard.press("Escape")

    row_for(page, client_obj).get_by_role("link", name="Zoë Müller").click()
    activity = page.get_by_role("dialog", name="Zoë Müller").get_by_role(
        "region", name="Activity log"
    )
    expect(activity.locator(".message-body")).to_have_text(rendered)
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#main img, dialog img")).to_have_count(0)
    assert [m.body for m in stored(client_obj)] == [rendered]


def test_send_from_the_details_drawer_returns_focus_to_the_client_link(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    link = row_for(page, client_obj).get_by_role("link", name="Zoë Müller")
    link.click()
    drawer = page.get_by_role("dialog", name="Zoë Müller")
    expect(drawer.get_by_role("region", name="Activity log")).to_contain_text("No activity yet.")
    drawer.get_by_role("link", name="Send a message").click()

    dialog = page.get_by_role("dialog", name="Send a message")
    expect(dialog).to_be_visible()
    expect(drawer).to_have_count(0)  # one drawer at a time
    expect(message_box(dialog)).to_be_focused()
    compose(dialog, "From the details, {{firstName}}.")
    send_button(dialog).click()
    expect(sent_items(dialog)).to_have_count(1)
    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet.")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(link).to_be_focused()
    assert [m.body for m in stored(client_obj)] == ["From the details, Zoë."]


def test_character_counter_follows_the_text(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    box = message_box(dialog)
    counter = dialog.locator("#message-counter")
    expect(counter).to_have_text("0 / 5,000")

    box.press_sequentially("Hello", delay=20)
    expect(counter).to_have_text("5 / 5,000")
    box.press("Backspace")
    expect(counter).to_have_text("4 / 5,000")

    box.fill("x" * 4_600)
    expect(counter).to_have_text("4,600 / 5,000")
    expect(counter).to_have_class(re.compile(r"\bis-near\b"))
    box.fill("short")
    expect(counter).to_have_text("5 / 5,000")
    expect(counter).not_to_have_class(re.compile(r"\bis-near\b"))


def test_actions_menu_and_panel_work_from_the_keyboard(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    button = actions_button(page, client_obj)
    menu = page.get_by_role("menu", name="Actions for Zoë Müller")
    view_details = menu.get_by_role("menuitem", name="View details")
    send_item = menu.get_by_role("menuitem", name="Send a message")

    # Enter opens the menu on its first item; Esc closes it and focus goes back to the button.
    button.focus()
    page.keyboard.press("Enter")
    expect(menu).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(view_details).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(send_item).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()

    # ArrowDown opens it too.
    page.keyboard.press("ArrowDown")
    expect(view_details).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(button).to_be_focused()

    # ArrowUp opens on the last item; Enter chooses it; Ctrl+Enter sends; Esc closes.
    page.keyboard.press("ArrowUp")
    expect(send_item).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Send a message")
    expect(dialog).to_be_visible()
    expect(message_box(dialog)).to_be_focused()
    page.keyboard.type("Sent from the keyboard, {{firstName}}.")
    expect(send_button(dialog)).to_be_enabled()  # once the preview has checked the text
    page.keyboard.press("Control+Enter")
    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet.")
    expect(sent_items(dialog)).to_have_count(1)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    assert [m.body for m in stored(client_obj)] == ["Sent from the keyboard, Zoë."]


def test_escape_in_the_insert_variable_menu_closes_only_that_menu(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    insert = dialog.get_by_role("button", name="Insert variable")
    variables = dialog.get_by_role("menu", name="Variables")
    insert.focus()
    page.keyboard.press("ArrowDown")
    expect(variables).to_be_visible()
    expect(variables.get_by_role("menuitem").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(variables).to_be_hidden()
    expect(dialog).to_be_visible()
    expect(insert).to_be_focused()


def test_send_page_without_the_drawer_shows_an_announced_toast(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    """The panel's own address (the link target without htmx) is a full page; its toasts are
    on top and exposed to assistive technology. Also checks the helpers the toast tests use."""
    login(agent_user)
    page.goto(f"/clients/{client_obj.id}/send/")
    expect(page.get_by_role("heading", name="Send a message", level=1)).to_be_visible()
    page.get_by_placeholder("Type your message...").fill("Full page, {{firstName}}.")
    page.get_by_role("button", name="Send", exact=True).click()
    toast = toasts(page, "status")
    expect(toast).to_contain_text("Sent to Zoë Müller's cabinet.")
    assert covered_by(toast) is None
    assert "Sent to Zoë Müller's cabinet." in exposed_text(page)
    assert [m.body for m in stored(client_obj)] == ["Full page, Zoë."]


def test_toasts_are_seen_and_announced_while_the_panel_is_open(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    """Regression: toasts used to be appended to <body>, outside the modal <dialog>, so they
    were painted under the drawer and inert (never announced). Found by this suite."""
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    compose(dialog, "Can you see the toast, {{firstName}}?")
    send_button(dialog).click()
    status = toasts(page, "status")
    expect(status).to_contain_text("Sent to Zoë Müller's cabinet.")
    assert covered_by(status) is None, "the success toast is hidden under the panel"
    assert "Sent to Zoë Müller's cabinet." in exposed_text(page), "the toast is not announced"

    page.route(SEND_URL, lambda route: route.abort())
    compose(dialog, "And the alert, {{firstName}}?")
    send_button(dialog).click()
    alert = toasts(page, "alert")
    expect(alert).to_contain_text("Could not reach Clientdesk")
    assert covered_by(alert) is None, "the alert toast is hidden under the panel"
    assert "Could not reach Clientdesk" in exposed_text(page), "the alert is not announced"
    assert covered_by(send_button(dialog)) is None, "the alert hides the Send button"


def test_focus_returns_to_actions_after_using_insert_variable(
    page: Page, login: Login, agent_user: User, client_obj: Client
) -> None:
    """Regression: a choice in the panel's "Insert variable" menu used to overwrite app.js's
    returnFocusTo with that menu's button, which goes away with the panel, so closing the panel
    dropped focus to <body>. Found by this suite."""
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    dialog.get_by_role("button", name="Insert variable").click()
    dialog.get_by_role("menuitem", name=re.compile(r"^firstName\b")).click()
    expect(message_box(dialog)).to_have_value("{{firstName}}")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(actions_button(page, client_obj)).to_be_focused()
