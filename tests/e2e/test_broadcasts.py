"""Broadcasts in a real browser, with a real worker process: from a search on the Clients page to
"Send to all N matching", the review, "Send to N clients", and the progress bar that the staff
event stream moves to completion without a reload; and a cancel that stops a scheduled one.
Everything the page says is checked in the database too."""

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.messaging.models import Message
from clientdesk.outreach.models import Broadcast, BroadcastRecipient
from tests.e2e.conftest import PASSWORD
from tests.e2e.helpers import toasts
from tests.servers import child_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
PHONE = {"width": 390, "height": 844}
AUDIENCE = 24


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `manage.py run_worker` on the test database when asked (its log in a file, which
    never fills up like a pipe); stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker-{len(started)}.log"
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), "run_worker"],
            env=child_env(CLIENTDESK_LEASE_SECONDS="2", CLIENTDESK_RETRY_SCALE="0"),
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()  # "... running" once Django is loaded; empty if it died
        assert b"running" in line, (line, log.read_text(errors="replace")[-2000:])
        return process

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def manager(make_staff: Callable[..., User]) -> User:
    return make_staff("Manager", first_name="Mia", last_name="Manager")


@pytest.fixture
def audience(make_client: Callable[..., Client]) -> list[Client]:
    made = [make_client(first_name=f"Guest{n:02d}", last_name="Harbour") for n in range(AUDIENCE)]
    make_client(first_name="Other", last_name="Person")
    return made


def _progressbar(page: Page) -> Any:
    return page.get_by_role("progressbar")


def _review_and_send(page: Page, body: str) -> None:
    page.get_by_role("textbox", name="Text").fill(body)
    page.get_by_role("button", name="Review").click()
    confirm = page.get_by_role("button", name=f"Send to {AUDIENCE} clients")
    expect(confirm).to_be_visible()
    review = page.locator("#review")
    expect(review).to_contain_text(f"{AUDIENCE} clients will get")
    expect(review).to_contain_text("Hello Guest00, the harbour opens at nine.")
    before = Broadcast.objects.count()
    assert Message.objects.count() == before * AUDIENCE  # the dry run wrote nothing
    confirm.dblclick()  # a double click is one broadcast (the compose's key)
    expect(page).to_have_url(re.compile(r"/broadcasts/[0-9a-f-]{36}/$"))
    assert Broadcast.objects.count() == before + 1


def test_from_the_clients_search_to_a_completed_broadcast_and_a_cancel(
    page: Page,
    login: Callable[[User], Page],
    manager: User,
    audience: list[Client],
    worker: Callable[[], subprocess.Popen[bytes]],
    screenshot: Callable[[Any, str], Any],
    tmp_path: Path,
) -> None:
    login(manager)
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Broadcasts")
    ).to_be_visible()

    # From the Clients page: the current search, and the button that counts it.
    page.wait_for_load_state("load")  # htmx listens for the typing once its script ran
    page.get_by_label("Search clients").fill("harbour")
    matching = page.get_by_role("link", name=f"Send to all {AUDIENCE} matching")
    expect(matching).to_be_visible()
    matching.click()
    expect(page.get_by_role("heading", name="New broadcast")).to_be_visible()
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("harbour")

    _review_and_send(page, "Hello {{firstName}}, the harbour opens at nine.")
    broadcast = Broadcast.objects.get()
    assert broadcast.recipients == AUDIENCE
    assert broadcast.created_by == manager
    expect(toasts(page, "status")).to_contain_text(f"Broadcast to {AUDIENCE} clients created.")
    bar = _progressbar(page)
    expect(bar).to_have_attribute("aria-valuemax", str(AUDIENCE))
    expect(bar).to_have_attribute("aria-valuenow", "0")
    expect(page.locator("body")).to_have_attribute("data-live-stream", "open")
    page.evaluate("window.__samePage = true")

    # The worker sends; the staff event stream moves the bar, without a reload.
    worker()
    try:
        expect(bar).to_have_attribute("aria-valuenow", str(AUDIENCE), timeout=30_000)
    except AssertionError as error:
        broadcast.refresh_from_db()
        log = (tmp_path / "worker-0.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"{broadcast.status}, {broadcast.sent} sent; worker: {log}") from error
    expect(page.locator("#broadcast-progress")).to_contain_text("Completed")
    expect(page.locator("#count-sent")).to_have_text(str(AUDIENCE))
    expect(page.locator("#count-pending")).to_have_text("0")
    expect(page.get_by_role("button", name="Cancel broadcast")).to_have_count(0)
    assert page.evaluate("window.__samePage") is True
    assert Message.objects.filter(broadcast_id=broadcast.id).count() == AUDIENCE
    assert set(
        Message.objects.filter(broadcast_id=broadcast.id).values_list("body", flat=True)
    ) == {f"Hello Guest{n:02d}, the harbour opens at nine." for n in range(AUDIENCE)}

    # The recipients table filters by status.
    page.get_by_label("Status").select_option("sent")
    expect(page.locator("#recipients tbody tr")).to_have_count(AUDIENCE)
    page.get_by_label("Status").select_option("skipped")
    expect(page.locator("#recipients")).to_contain_text("No recipients")
    screenshot(page, "completed")

    # A scheduled one, cancelled before its time: nothing is ever written for it.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Broadcasts").click()
    expect(page.get_by_role("heading", name="Broadcasts", level=1)).to_be_visible()
    expect(page.locator("#broadcast-table tbody tr")).to_have_count(1)
    page.get_by_role("link", name="New broadcast").click()
    page.get_by_role("searchbox", name="Search").fill("harbour")
    page.get_by_role("radio", name="At a time").check()
    tomorrow = timezone.localtime() + timedelta(days=1)
    page.get_by_label(re.compile(r"^Date and time \(")).fill(tomorrow.strftime("%Y-%m-%dT%H:%M"))
    _review_and_send(page, "Hello {{firstName}}, the harbour opens at nine.")
    scheduled = Broadcast.objects.exclude(pk=broadcast.pk).get()
    expect(page.locator("#broadcast-progress")).to_contain_text("Scheduled")
    page.get_by_role("button", name="Cancel broadcast").click()
    dialog = page.get_by_role("dialog", name="Cancel this broadcast?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#broadcast-progress")).to_contain_text("Cancelled")
    expect(page.locator("#count-cancelled")).to_have_text(str(AUDIENCE))
    expect(toasts(page, "status")).to_contain_text(f"{AUDIENCE} clients will not get it")
    expect(page.get_by_role("button", name="Cancel broadcast")).to_have_count(0)
    scheduled.refresh_from_db()
    assert scheduled.status == "cancelled"
    assert not Message.objects.filter(broadcast_id=scheduled.id).exists()
    assert (
        BroadcastRecipient.objects.filter(broadcast=scheduled, status="cancelled").count()
        == AUDIENCE
    )


def test_the_composer_review_and_broadcast_page_at_390_px(
    browser: Any,
    live_server: Any,
    manager: User,
    audience: list[Client],
    screenshot: Callable[[Any, str], Any],
) -> None:
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(manager.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()
        page.wait_for_load_state("load")  # htmx listens for the typing once its script ran
        page.get_by_label("Search clients").fill("harbour")
        matching = page.get_by_role("link", name=f"Send to all {AUDIENCE} matching")
        expect(matching).to_be_in_viewport()
        screenshot(page, "clients-390")
        matching.click()
        expect(page.get_by_role("heading", name="New broadcast")).to_be_visible()
        page.wait_for_load_state("load")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the composer scrolls sideways at 390 px: {widths}"
        screenshot(page, "composer-top-390")
        # A refused review is an alert; the form keeps what was typed.
        search = page.get_by_role("searchbox", name="Search")
        search.fill("")
        page.get_by_role("textbox", name="Text").fill("Hello {{firstName}}")
        page.get_by_role("button", name="Review").click()
        expect(page.get_by_role("alert")).to_contain_text("Choose who gets it")
        expect(page.get_by_role("textbox", name="Text")).to_have_value("Hello {{firstName}}")
        screenshot(page, "refused-390")
        search.fill("harbour")
        page.get_by_role("radio", name="Outreach").check()
        page.get_by_role("button", name="Review").click()
        confirm = page.get_by_role("button", name=f"Send to {AUDIENCE} clients")
        expect(confirm).to_be_visible()
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the composer scrolls sideways at 390 px: {widths}"
        screenshot(page, "composer-390")
        confirm.click()
        expect(page).to_have_url(re.compile(r"/broadcasts/[0-9a-f-]{36}/$"))
        expect(page.get_by_role("progressbar")).to_be_visible()
        expect(page.get_by_role("button", name="Cancel broadcast")).to_be_in_viewport()
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the broadcast page scrolls sideways at 390 px: {widths}"
        screenshot(page, "broadcast-390")
        page.locator("#recipients").scroll_into_view_if_needed()
        screenshot(page, "recipients-390")
        page.goto("/broadcasts/")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the list scrolls sideways at 390 px: {widths}"
        screenshot(page, "list-390")
    finally:
        context.close()
    assert not errors, errors
    assert Broadcast.objects.get().category == "outreach"
