"""Staff hear when a client answers, in a real browser: a client's reply through the portal API
reaches the sender's open staff page (toast, tab title, badge on "Messages", a desktop
notification once asked for), not another agent; the count survives a reload and opening the
conversation reads it. Each page opens one event stream, and the tabs of one browser share one:
seven tabs all load and all hear the reply, over one stream held by the server."""

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import ReplyNotification
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from clientdesk.portal.services import portal_session_issue
from tests.e2e.conftest import PASSWORD
from tests.e2e.helpers import toasts

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Counts the page's EventSources and records desktop notifications instead of showing them (a
# headless browser has no desktop), both into attributes a locator can read: the page's CSP
# refuses the eval that polling a JS value would need.
COUNTING = """
(() => {
  const Original = window.EventSource;
  let opened = 0;
  window.EventSource = class extends Original {
    constructor(url, init) {
      super(url, init);
      opened += 1;
      document.documentElement.dataset.eventSources = String(opened);
    }
  };
  const Real = window.Notification;
  if (!Real) return;
  const shown = [];
  function Recorded(title, options) {
    shown.push(title + " | " + ((options && options.body) || ""));
    document.documentElement.dataset.desktopNotifications = shown.join("\\n");
    return new EventTarget();
  }
  Object.defineProperty(Recorded, "permission", { get: function () { return Real.permission; } });
  Recorded.requestPermission = function () { return Real.requestPermission(); };
  window.Notification = Recorded;
})();
"""


def sign_in(page: Any, user: Any) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/clients/$"))
    expect(page.locator("body[data-live-stream='open']")).to_have_count(1, timeout=30_000)


def send(sender: Any, client: Any, body: str) -> Message:
    result = message_send(
        sender=sender,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    return Message.objects.get(pk=result.message_id)


def portal_reply(live_server: Any, issuer: Any, client: Any, body: str, in_reply_to: Any) -> None:
    """The client answers through the portal API, as any cabinet would."""
    token = portal_session_issue(issuer=issuer, token=None, client_id=client.id).representation()
    response = httpx.post(
        f"{live_server.url}/portal/api/v1/messages",
        json={"body": body, "in_reply_to": str(in_reply_to.pk) if in_reply_to else None},
        headers={"Authorization": f"Bearer {token['token']}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def badge(page: Any) -> Any:
    return page.locator("#unread-replies")


def test_a_reply_reaches_its_sender_on_any_page_and_no_one_else(
    browser, live_server, page, make_staff, make_client, screenshot
):
    sam = make_staff("Agent", first_name="Sam", last_name="Sender")
    olga = make_staff("Agent", first_name="Olga", last_name="Other")
    issuer = make_staff("Integration")
    client = make_client(first_name="Nora", last_name="Näher")
    mine = send(sam, client, "Could you send your payslip?")
    page.context.add_init_script(COUNTING)
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    sign_in(page, sam)
    expect(badge(page)).to_be_hidden()
    expect(page).to_have_title(re.compile(r"^Clients · "))
    # Desktop notifications only after the user asks.
    button = page.get_by_role("button", name="Desktop notifications", pressed=False)
    expect(button).to_be_visible()
    button.click()
    expect(page.get_by_role("button", name="Desktop notifications", pressed=True)).to_be_visible()

    other_context = browser.new_context(base_url=live_server.url)
    other_context.add_init_script(COUNTING)
    try:
        other = other_context.new_page()
        sign_in(other, olga)
        other.goto("/messages/")
        expect(other.locator("body[data-live-stream='open']")).to_have_count(1, timeout=30_000)

        portal_reply(live_server, issuer, client, "<b>Here</b> it is <img src=x>", mine)

        notice = toasts(page, "status").filter(has_text="New reply from Nora Näher")
        expect(notice).to_be_visible(timeout=30_000)
        expect(notice).to_contain_text("<b>Here</b> it is <img src=x>")  # text, not markup
        expect(notice.get_by_role("link", name="Open conversation")).to_have_attribute(
            "href", f"/clients/{client.pk}/send/"
        )
        expect(page).to_have_title(re.compile(r"^\(1\) Clients · "))
        expect(badge(page)).to_be_visible()
        expect(badge(page)).to_have_text("1 unread replies")
        expect(page.get_by_role("link", name="Messages 1 unread replies")).to_be_visible()
        expect(page.locator("html")).to_have_attribute(
            "data-desktop-notifications", "Reply from Nora Näher | <b>Here</b> it is <img src=x>"
        )
        screenshot(page, "reply-toast-and-badge")

        # The other agent's Messages page moved (the reply is everyone's to see), but the
        # reply was not to them: no toast, no count.
        expect(other.locator("#conversations")).to_contain_text("it is", timeout=30_000)
        expect(toasts(other, "status").filter(has_text="New reply")).to_have_count(0)
        expect(badge(other)).to_be_hidden()
        expect(other).to_have_title(re.compile(r"^Messages · "))
        assert other.locator("html").get_attribute("data-desktop-notifications") is None
        expect(other.locator("html")).to_have_attribute("data-event-sources", "1")
    finally:
        other_context.close()

    # Rendered by the server after a reload, on whatever page.
    page.goto("/messages/")
    expect(badge(page)).to_have_text("1 unread replies")
    expect(page).to_have_title(re.compile(r"^\(1\) Messages · "))
    expect(page.locator("body[data-live-stream='open']")).to_have_count(1, timeout=30_000)
    # Opening the conversation reads it, here and after a reload.
    page.locator(f"li[data-client-id='{client.pk}'] .conversation-client").click()
    expect(page.get_by_role("dialog", name="Send a message")).to_be_visible()
    expect(badge(page)).to_be_hidden(timeout=30_000)
    expect(page).to_have_title(re.compile(r"^Messages · "))
    # One stream on the Messages page with the panel open too (it used to open two).
    expect(page.locator("html")).to_have_attribute("data-event-sources", "1")
    expect_eventually(lambda: live_server.subscribers() == 1)  # the other agent's has gone
    page.reload()
    expect(page.locator("h1")).to_have_text("Messages")
    expect(badge(page)).to_be_hidden()
    assert ReplyNotification.objects.get(user=sam).read_at is not None


def test_seven_tabs_of_one_browser_load_and_hear_a_reply_over_one_stream(
    live_server, page, make_staff, make_client
):
    sam = make_staff("Agent", first_name="Sam", last_name="Sender")
    issuer = make_staff("Integration")
    client = make_client(first_name="Tess", last_name="Tabs")
    mine = send(sam, client, "Anything else?")
    page.context.add_init_script(COUNTING)
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    sign_in(page, sam)
    page.get_by_role("button", name="Desktop notifications", pressed=False).click()
    expect(page.get_by_role("button", name="Desktop notifications", pressed=True)).to_be_visible()
    tabs = [page]
    for n in range(6):
        tab = page.context.new_page()
        tab.goto("/messages/" if n % 2 else "/clients/")
        expect(tab.locator("h1")).to_be_visible(timeout=30_000)
        tabs.append(tab)
    for tab in tabs:
        expect(tab.locator("body[data-live-stream='open']")).to_have_count(1, timeout=30_000)
    # Browsers give a host six HTTP/1.1 connections: these seven tabs hold one stream between them.
    assert live_server.subscribers() == 1
    leaders = [t for t in tabs if t.locator("body[data-live-leader='true']").count()]
    assert len(leaders) == 1

    portal_reply(live_server, issuer, client, "Nothing else, thanks", mine)
    for tab in tabs:
        expect(badge(tab)).to_have_text("1 unread replies", timeout=30_000)
        expect(toasts(tab, "status").filter(has_text="New reply from Tess Tabs")).to_be_visible()
    # One desktop notification for the browser, from the tab that holds the stream.
    shown = [t.locator("html").get_attribute("data-desktop-notifications") for t in tabs]
    assert shown.count("Reply from Tess Tabs | Nothing else, thanks") == 1, shown
    assert shown.count(None) == 6, shown
    assert leaders[0].locator("html").get_attribute("data-desktop-notifications")

    # The tab holding the stream closes: another takes it over and hears the next reply.
    leaders[0].close()
    rest = [t for t in tabs if t is not leaders[0]]
    for tab in rest:
        expect(tab.locator("body[data-live-stream='open']")).to_have_count(1, timeout=30_000)

    def one_leader() -> bool:
        return sum(t.locator("body[data-live-leader='true']").count() for t in rest) == 1

    expect_eventually(one_leader)
    expect_eventually(lambda: live_server.subscribers() == 1)
    portal_reply(live_server, issuer, client, "Oh, one more thing", None)
    for tab in rest:
        expect(badge(tab)).to_have_text("2 unread replies", timeout=30_000)


def expect_eventually(condition: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_burst_of_replies_counts_them_all_and_keeps_three_toasts(
    live_server, page, make_staff, make_client
):
    from clientdesk.portal.services import portal_reply_create

    sam = make_staff("Agent", first_name="Sam", last_name="Sender")
    clients = [make_client(first_name=f"Burst{n}") for n in range(5)]
    sent = [send(sam, c, "Shall we go ahead?") for c in clients]
    sign_in(page, sam)
    for client, mine in zip(clients, sent, strict=True):
        portal_reply_create(
            client=client,
            body="Yes",
            idempotency_key=str(uuid.uuid4()),
            in_reply_to=mine.pk,
            meta=RequestMeta(),
        )
    expect(badge(page)).to_have_text("5 unread replies", timeout=30_000)
    expect(page).to_have_title(re.compile(r"^\(5\) Clients · "))
    replies = page.locator("#toasts .toast[data-source^='reply-']")
    expect(replies.filter(has_text="New reply from Burst4")).to_be_visible()
    assert 1 <= replies.count() <= 3

    # The Messages page marks them all read, the one that arrived after it loaded included.
    page.goto("/messages/")
    expect(page.locator("body[data-live-stream='open']")).to_have_count(1, timeout=30_000)
    late = make_client(first_name="Late")
    portal_reply_create(
        client=late,
        body="Me too",
        idempotency_key=str(uuid.uuid4()),
        in_reply_to=send(sam, late, "And you?").pk,
        meta=RequestMeta(),
    )
    expect(badge(page)).to_have_text("6 unread replies", timeout=30_000)
    page.get_by_role("button", name="Mark replies read").click()
    expect(badge(page)).to_be_hidden(timeout=30_000)
    expect(page.get_by_role("button", name="Mark replies read")).to_be_hidden()
    expect(page).to_have_title(re.compile(r"^Messages · "))
    page.reload()
    expect(badge(page)).to_be_hidden()
    assert not ReplyNotification.objects.filter(user=sam, read_at__isnull=True).exists()
