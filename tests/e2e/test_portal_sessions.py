"""The cabinet's session in a real browser: it renews itself in the background while the tab is
open (a 12-second session lasts as long as the test wants), a reply that met an ended session is
kept and sent exactly once after the client signs in again in the same tab (with the key it
was first sent with), "Sign out" ends the session on the server, and the signed-out page asks
for a new link by e-mail with the same answer for any address."""

import io
import json
import re
import time
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from clientdesk.delivery.models import Channel, Delivery
from clientdesk.messaging.models import Direction, IdempotencyKey, Message
from clientdesk.portal.models import PortalSession
from tests.sending import send_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def portal_link(live_server: Any, client: Any) -> str:
    out = io.StringIO()
    call_command("portal_link", client.external_id, "--base-url", live_server.url, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def signed_in(page: Any) -> None:
    expect(page.get_by_role("heading", name=re.compile("^Messages"))).to_be_visible()


def test_a_reply_that_met_an_ended_session_is_sent_once_after_signing_in_again(
    page, live_server, client_obj
) -> None:
    with page.expect_response("**/portal/api/v1/session/refresh"):
        page.goto(portal_link(live_server, client_obj))
    signed_in(page)
    keys: list[str] = []

    # The reply reaches the server, but its answer is lost and the session ends: what the
    # cabinet sees is 401.
    def lost_answer(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.headers["idempotency-key"])
        route.fetch()
        PortalSession.objects.update(expires_at=PortalSession.objects.get().created_at)
        route.fulfill(
            status=401,
            content_type="application/problem+json",
            body=json.dumps({"status": 401, "title": "Not authenticated", "detail": "ended"}),
        )

    page.route("**/portal/api/v1/messages", lost_answer)
    page.get_by_label("Your reply").fill("Kept <b>reply</b> \u202e with care")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#kept-reply")).to_contain_text("Your reply is kept")
    page.unroute("**/portal/api/v1/messages")
    assert Message.objects.filter(direction=Direction.IN).count() == 1  # it did arrive

    # The client opens a new sign-in link in this tab: the kept reply goes with its first key.
    sent_again: list[str] = []
    page.on(
        "request",
        lambda r: (
            sent_again.append(r.headers.get("idempotency-key", ""))
            if r.method == "POST" and r.url.endswith("/portal/api/v1/messages")
            else None
        ),
    )
    page.goto(portal_link(live_server, client_obj))
    signed_in(page)
    expect(page.get_by_role("status").filter(has_text="Your kept reply was sent.")).to_be_visible()
    assert sent_again == keys
    mine = page.locator(".message.mine")
    expect(mine).to_have_count(1)
    expect(mine.locator(".preview")).to_have_text("Kept <b>reply</b> \u202e with care")
    assert Message.objects.filter(direction=Direction.IN).count() == 1
    assert IdempotencyKey.objects.filter(key=keys[0]).count() == 1

    # A reload sends nothing more.
    page.reload()
    signed_in(page)
    expect(page.locator(".message.mine")).to_have_count(1)
    assert Message.objects.filter(direction=Direction.IN).count() == 1


def test_text_being_written_when_the_session_ends_is_back_in_the_box(
    page, live_server, client_obj
) -> None:
    with page.expect_response("**/portal/api/v1/session/refresh"):
        page.goto(portal_link(live_server, client_obj))
    signed_in(page)
    page.get_by_label("Your reply").fill("half a thought")
    PortalSession.objects.update(revoked_at=PortalSession.objects.get().created_at)
    page.get_by_role("button", name="Notification settings").click()  # any call: 401
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#kept-reply")).to_contain_text("is back in the reply box")
    page.goto(portal_link(live_server, client_obj))
    signed_in(page)
    expect(page.get_by_label("Your reply")).to_have_value("half a thought")
    assert not Message.objects.filter(direction=Direction.IN).exists()


def test_a_short_session_renews_itself_while_the_tab_is_open_and_signs_out(
    page, live_server, client_obj, agent, settings
) -> None:
    settings.PORTAL_SESSION_MINUTES = 0.2  # twelve seconds
    refreshed: list[int] = []
    page.on(
        "response",
        lambda r: refreshed.append(r.status) if r.url.endswith("/session/refresh") else None,
    )
    page.goto(portal_link(live_server, client_obj))
    signed_in(page)
    started = time.monotonic()
    deadline = started + 90
    # Well past the twelve seconds of the first token, on renewals alone.
    while time.monotonic() < started + 16 or len(refreshed) < 3:
        assert time.monotonic() < deadline, refreshed
        page.wait_for_timeout(200)
    assert set(refreshed) == {200}
    expect(page.get_by_role("heading", name=re.compile("^Messages"))).to_be_visible()
    # The stream is still open: a message arrives live.
    send_text(agent, client_obj, "Still with you")
    expect(page.get_by_role("button", name=re.compile("Still with you"))).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signed-out-text")).to_have_text("You signed out.")
    assert PortalSession.objects.get().revoked_at is not None
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_the_signed_out_page_asks_for_a_link_by_email(
    page, live_server, make_client, settings
) -> None:
    settings.PORTAL_LINK_REQUEST_SECONDS = 0.0
    make_client(email="known@example.de")
    page.goto("/portal/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    answers = []
    for email in ("known@example.de", "nobody@example.de"):
        page.get_by_label("Your e-mail address").fill(email)
        page.get_by_role("button", name="E-mail me a sign-in link").click()
        status = page.locator("#link-request-status")
        expect(status).to_contain_text("a sign-in link is on its way")
        answers.append(status.text_content())
        status.evaluate("node => { node.textContent = '' }")
    assert answers[0] == answers[1]
    assert Delivery.objects.filter(channel=Channel.EMAIL).count() == 1
    # Past the limit for one address: the page says to wait.
    for _ in range(3):
        page.get_by_role("button", name="E-mail me a sign-in link").click()
        page.wait_for_timeout(100)
    expect(page.locator("#link-request-status")).to_contain_text("Try again in")
