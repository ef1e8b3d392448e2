"""Nothing on the browser console: every staff page, the send panel used with a template, the
Templates pages (managers' and senders'), the admin and the client's cabinet load and are used
with no console error (a failed request, a script error) and no Content-Security-Policy
violation, however it is reported (the console, or the `securitypolicyviolation` event).

The staff pages are walked from the URL resolver, so a page added later is checked too."""

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from playwright.sync_api import BrowserContext, Page, expect

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import OutgoingEndpoint
from clientdesk.messaging.models import MessageTemplate
from clientdesk.messaging.services.templates import (
    SetActive,
    SetVariant,
    template_change,
    template_create,
)
from clientdesk.portal.services import portal_reply_create
from tests.e2e.conftest import PASSWORD, VIEWPORT
from tests.e2e.helpers import message_box, open_send_panel, send_button, toasts
from tests.sending import send_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 375, "height": 667}
# Not pages: the APIs, the admin (walked on its own), the cabinet's API, files to download.
NOT_PAGES = re.compile(r"^(api/|admin/|portal/api/|healthz|livez|readyz|metrics)|\.(txt|pem)$")
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => window.__reportViolation(
  `${e.violatedDirective} refused ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
));
"""


class Console:
    """Everything a context's pages report that a user's console would show as a problem."""

    def __init__(self, context: BrowserContext) -> None:
        self.problems: list[str] = []
        context.expose_binding(
            "__reportViolation",
            lambda source, text: self.problems.append(f"CSP {source['page'].url}: {text}"),
        )
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("page", self.watch)
        self.context = context

    def watch(self, page: Page) -> None:
        page.on(
            "console",
            lambda message: (
                self.problems.append(f"console {page.url}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.problems.append(f"script {page.url}: {error}"))


@pytest.fixture
def console(browser: Any, live_server: Any) -> Iterator[Console]:
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    expect.set_options(timeout=10_000)
    try:
        yield Console(context)
    finally:
        context.close()


def sign_in(context: BrowserContext, user: User, *, admin: bool = False) -> Page:
    page = context.new_page()
    page.goto("/admin/login/" if admin else "/accounts/login/")
    page.get_by_label(re.compile("^Username")).fill(user.username)
    page.get_by_label(re.compile("^Password")).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("^Log in$", re.I)).click()
    page.wait_for_load_state("load")
    return page


def settle(page: Page) -> None:
    """Wait until the page's own requests (htmx loads, previews) are done."""
    page.wait_for_load_state("load")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")


def staff_routes(patterns: Any = None, prefix: str = "") -> Iterator[str]:
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if NOT_PAGES.search(route):
            continue
        if isinstance(entry, URLResolver):
            yield from staff_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route


@pytest.fixture
def world(make_staff: Any, make_client: Any) -> dict[str, Any]:
    """An installation in use: a webhook endpoint, templates (one inactive), a conversation
    with a reply."""
    admin = make_staff(
        "Administrator", first_name="Ada", last_name="Admin", is_staff=True, is_superuser=True
    )
    agent = make_staff("Agent", first_name="Alex", last_name="Agent")
    client = make_client(first_name="Zoë", last_name="Müller", language="de")
    OutgoingEndpoint.objects.create(pk=1, url="https://example.invalid/hook", enabled=False)
    version = template_create(
        author=admin, name="Documents", body="Hi {{ firstName }}, your ID please.", language="en"
    )
    template_change(
        author=admin,
        template_id=version.template_id,
        actions=[SetVariant("Hallo {{ firstName }}, Ihren Ausweis bitte.", "de")],
    )
    retired = template_create(author=admin, name="Retired", body="Old", language="en")
    template_change(author=admin, template_id=retired.template_id, actions=[SetActive(False)])
    sent = send_text(agent, client, "Hello {{ firstName }}")
    portal_reply_create(
        client=client,
        body="Danke!",
        idempotency_key="r1",
        meta=RequestMeta(),
        in_reply_to=sent.message_id,
    )
    return {"admin": admin, "agent": agent, "client": client, "template": version.template}


def _url(route: str, world: dict[str, Any]) -> str:
    template: MessageTemplate = world["template"]
    client: Client = world["client"]
    url = "/" + route.replace("<id:client_id>", str(client.id))
    url = url.replace("<id:template_id>", str(template.id))
    return url


def test_every_staff_page_and_the_panel_with_a_template(console: Console, world: Any) -> None:
    page = sign_in(console.context, world["admin"])
    visited = []
    for route in staff_routes():
        url = _url(route, world)
        if "<" in url:  # an object this walk has none of (a delivery to retry)
            continue
        # Asked first without the browser: a form's target (405), a download or an htmx
        # fragment (the panel's conversation) is no page.
        probe = page.request.get(url)
        if probe.status == 405 or not probe.headers["content-type"].startswith("text/html"):
            continue
        if not probe.text().lstrip().lower().startswith("<!doctype html>"):
            continue
        response = page.goto(url)
        assert response is not None and response.status < 400, (url, probe.status)
        settle(page)
        visited.append(url)
    assert {"/clients/", "/messages/", "/templates/", "/integrations/", "/audit/"} <= set(visited)

    # The send panel: a draft, a template over it, its text edited, sent.
    page.goto("/clients/")
    dialog = open_send_panel(page, world["client"])
    message_box(dialog).fill("My own draft")
    dialog.get_by_placeholder("Use a template (search)…").fill("Documents")
    expect(message_box(dialog)).to_have_value("Hallo Zoë, Ihren Ausweis bitte.")
    message_box(dialog).fill("Hallo Zoë, Ihren Ausweis bitte bis Freitag.")
    expect(dialog.locator("#compose-preview .template-note")).to_contain_text("edited")
    # The box made taller, as its drag handle does (an inline height): the form that replaces
    # it after the send must not copy that style over, which the policy would refuse.
    message_box(dialog).evaluate("box => { box.style.height = '300px'; }")
    send_button(dialog).click()
    expect(toasts(page, "status")).to_contain_text("Sent to Zoë Müller's cabinet")
    expect(message_box(dialog)).to_have_value("My own draft")
    settle(page)
    page.keyboard.press("Escape")

    # The template editor's preview of the variant being edited, for a chosen client.
    page.goto(f"/templates/{world['template'].id}/")
    page.get_by_label("Preview for client").fill("Müller")
    expect(page.locator("#preview .preview-body")).to_have_text("Hi Zoë, your ID please.")
    assert console.problems == []


def test_a_senders_read_only_templates(console: Console, world: Any) -> None:
    page = sign_in(console.context, world["agent"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    expect(page.get_by_role("link", name="Retired")).to_have_count(0)
    page.get_by_role("link", name="Documents").click()
    expect(page.get_by_role("heading", name="German (de)")).to_be_visible()
    expect(page.locator("textarea")).to_have_count(0)
    page.get_by_label("Preview for client").fill("Müller")
    expect(page.locator("#preview .preview-body")).to_have_text("Hallo Zoë, Ihren Ausweis bitte.")
    expect(page.locator("#preview .variant-note")).to_have_text(
        "German (de) variant — the client's language is de."
    )
    assert console.problems == []


def test_the_admin_pages(console: Console, world: Any) -> None:
    page = sign_in(console.context, world["admin"], admin=True)
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    lists = page.eval_on_selector_all(
        "#content-main a[href$='/']:not(.addlink)", "links => links.map(a => a.pathname)"
    )
    assert lists, "the admin index lists no models"
    for changelist in dict.fromkeys(lists):
        page.goto(changelist)
        settle(page)
        first = page.locator("#result_list tbody th a").first
        if first.count():
            first.click()
            settle(page)
    assert console.problems == []


def test_the_cabinet(console: Console, live_server: Any, world: Any) -> None:
    out = io.StringIO()
    client: Client = world["client"]
    call_command("portal_link", client.external_id, "--base-url", live_server.url, stdout=out)
    page = console.context.new_page()
    page.set_viewport_size(PHONE)
    page.goto(out.getvalue().strip().splitlines()[-1])
    message = page.get_by_role("button", name=re.compile("Hello Zoë"))
    expect(message).to_be_visible()
    message.click()
    page.get_by_label("Ihre Antwort").fill("Alles klar")  # the client reads German
    page.get_by_role("button", name="Antwort senden").click()
    expect(page.locator(".message.mine").first).to_contain_text("Alles klar")
    assert console.problems == []


def test_the_admin_header_fits_a_phone(browser: Any, live_server: Any, make_staff: Any) -> None:
    """A long unbroken user name used to push the admin's user tools off a phone's screen."""
    admin = make_staff(
        "Administrator",
        username="portal_backend_service_account_production_eu_west_1",
        first_name="",  # the admin then greets the user by the user name
        is_staff=True,
        is_superuser=True,
    )
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    try:
        console = Console(context)
        page = sign_in(context, admin, admin=True)
        for path in ["/admin/", "/admin/clients/client/", "/admin/accounts/user/"]:
            page.goto(path)
            outside = page.eval_on_selector_all(
                "#header, #header *, div.breadcrumbs",
                """els => els.filter(e => {
                     const r = e.getBoundingClientRect();
                     return r.width && (r.left < 0 || r.right > window.innerWidth + 1);
                   }).map(e => e.outerHTML.slice(0, 60))""",
            )
            assert outside == [], (path, outside)
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert console.problems == []
    finally:
        context.close()
