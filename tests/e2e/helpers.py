"""Small page helpers shared by the browser tests."""

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from clientdesk.clients.models import Client
from clientdesk.messaging.models import Message

SEND_URL = re.compile(r"/clients/[0-9a-f-]+/messages/$")
PREVIEW_URL = re.compile(r"/templates/preview/$")


def row_for(page: Page, client: Client) -> Locator:
    return page.get_by_role("row").filter(
        has=page.get_by_role("link", name=client.full_name, exact=True)
    )


def actions_button(page: Page, client: Client) -> Locator:
    return row_for(page, client).get_by_role("button", name="Actions")


def open_send_panel(page: Page, client: Client) -> Locator:
    """Actions → "Send a message"; returns the dialog once it is open and named."""
    actions_button(page, client).click()
    page.get_by_role("menuitem", name="Send a message").click()
    dialog = page.get_by_role("dialog", name="Send a message")
    expect(dialog).to_be_visible()
    return dialog


def message_box(dialog: Locator) -> Locator:
    return dialog.get_by_placeholder("Type your message...")


def send_button(dialog: Locator) -> Locator:
    return dialog.get_by_role("button", name="Send", exact=True)


def preview(dialog: Locator) -> Locator:
    """The live preview under the text box: what the client will receive, or why not."""
    return dialog.locator("#compose-preview")


def compose(dialog: Locator, text: str) -> None:
    """Type `text` and wait for the live preview to clear it for sending."""
    message_box(dialog).fill(text)
    expect(preview(dialog).locator("[data-preview-ok=true]")).to_be_visible()
    expect(send_button(dialog)).to_be_enabled()


def sent_items(dialog: Locator) -> Locator:
    return dialog.locator("#sent-list .sent-item")


def toasts(page: Page, role: str) -> Locator:
    """Toasts: role "status" for success, "alert" for failure (docs/ARCHITECTURE.md, "UI")."""
    return page.locator("#toasts").get_by_role(role)


def stored(client: Client) -> list[Message]:
    return list(Message.objects.filter(client=client).select_related("sender"))


def exposed_roles(page: Page) -> list[tuple[str, str]]:
    """(role, name) of every node Chromium exposes to assistive technology.

    Playwright's own role locators also match nodes a screen reader cannot reach (for instance
    content made inert by a modal <dialog>), so announcements are checked here.
    """
    cdp = page.context.new_cdp_session(page)
    try:
        nodes: list[dict[str, Any]] = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    return [
        (node.get("role", {}).get("value", ""), str(node.get("name", {}).get("value", "")))
        for node in nodes
        if not node.get("ignored")
    ]


def exposed_text(page: Page) -> str:
    return " ".join(name for role, name in exposed_roles(page) if role == "StaticText")


def covered_by(locator: Locator) -> str | None:
    """None when the element's centre is really on top (what a user sees and can click),
    else the start of the element that covers it."""
    return locator.evaluate(
        """el => {
          const r = el.getBoundingClientRect();
          const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
          if (hit && el.contains(hit)) return null;
          return hit ? hit.outerHTML.slice(0, 80) : "nothing (off screen)";
        }"""
    )


class SendTracker:
    """Counts the browser's POSTs to the send endpoint, and waits until none is in flight."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sent: list[Any] = []
        self.settled: list[Any] = []
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_settled)
        page.on("requestfailed", self._on_settled)

    def _on_request(self, request: Any) -> None:
        if request.method == "POST" and SEND_URL.search(request.url):
            self.sent.append(request)

    def _on_settled(self, request: Any) -> None:
        if request in self.sent:
            self.settled.append(request)

    def wait_until_idle(self, timeout_ms: int = 30_000) -> int:
        """Wait for every send POST to finish or fail; returns how many there were."""
        waited = 0
        self.page.wait_for_timeout(200)  # a request still being queued by the page shows up
        while len(self.settled) < len(self.sent):
            assert waited < timeout_ms, f"{len(self.sent) - len(self.settled)} sends still open"
            self.page.wait_for_timeout(50)
            waited += 50
        return len(self.sent)
