"""The cabinet in a real browser speaks the client's language, whatever the browser's, and shows
message times in the client's locale and time zone, not the browser's."""

import io
import re
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from clientdesk.clients.models import Client
from clientdesk.messaging.models import Message
from tests.sending import send_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}
PUSH_OFF = {
    "de": "Benachrichtigungen sind auf diesem Gerät ausgeschaltet.",
    "pt-br": "As notificações estão desativadas neste dispositivo.",
}


def portal_link(live_server, client) -> str:
    out = io.StringIO()
    call_command("portal_link", client.external_id, "--base-url", live_server.url, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("language", "zone", "lang", "button", "heading", "unread", "settings_name"),
    [
        (
            "de",
            "Europe/Berlin",
            "de",
            "Antwort senden",
            "Nachrichten",
            "1 ungelesen",
            "Benachrichtigungseinstellungen",
        ),
        (
            "pt-br",
            "America/Sao_Paulo",
            "pt-br",
            "Enviar resposta",
            "Mensagens",
            "1 não lida",
            "Configurações de notificação",
        ),
    ],
)
def test_the_cabinet_speaks_the_clients_language_in_the_clients_zone(
    browser,
    live_server,
    agent_user,
    make_client,
    screenshot,
    language,
    zone,
    lang,
    button,
    heading,
    unread,
    settings_name,
) -> None:
    client = make_client(language=language, timezone=zone)
    send_text(agent_user, client, "Your statement is ready.")
    sent = Message.objects.get(client=client)
    # The browser says English and lives in Tokyo: neither is the client's.
    context = browser.new_context(locale="en-US", timezone_id="Asia/Tokyo")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(portal_link(live_server, client))
        expect(page.locator("html")).to_have_attribute("lang", lang, timeout=30_000)
        expect(page.get_by_role("button", name=button)).to_be_visible(timeout=30_000)
        expect(page.get_by_role("heading", name=re.compile(f"^{heading}"))).to_be_visible()
        expect(page.locator("#unread")).to_have_text(unread)
        expect(page).to_have_title(re.compile(rf"^\(1\) {heading} · "))

        # The message's time: the client's zone and locale, as Intl formats them.
        when = page.locator(".message time")
        expect(when).to_have_attribute("datetime", re.compile(r"\d{4}-\d\d-\d\dT"))
        local = sent.created_at.astimezone(ZoneInfo(zone))
        expect(when).to_contain_text(local.strftime("%H:%M"))
        expected = page.evaluate(
            """([iso, lang, zone]) => new Intl.DateTimeFormat(lang, {
                 dateStyle: "medium", timeStyle: "short", timeZone: zone}).format(new Date(iso))""",
            [when.get_attribute("datetime"), language, zone],
        )
        expect(when).to_have_text(expected)
        tokyo = sent.created_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M")
        assert tokyo not in when.inner_text()

        # Longer words (Benachrichtigungseinstellungen) still fit a phone's width.
        page.set_viewport_size(PHONE)
        page.get_by_role("button", name=settings_name).click()
        expect(page.locator("#settings")).to_be_visible()
        # Every script of the cabinet speaks it, Web Push's too.
        expect(page.locator("#push-state")).to_have_text(PUSH_OFF[language])
        screenshot(page, f"cabinet-phone-{language}")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()
    assert not errors


def test_an_unknown_language_gets_the_english_cabinet(browser, live_server, make_client) -> None:
    client = make_client()
    Client.objects.filter(pk=client.pk).update(language="xx")  # an old row: no such language
    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    try:
        page.goto(portal_link(live_server, client))
        # The browser's German is only a guess before sign-in; the client's row decides.
        expect(page.locator("html")).to_have_attribute("lang", "en", timeout=30_000)
        expect(page.get_by_role("button", name="Send reply")).to_be_visible(timeout=30_000)
        expect(page.get_by_role("heading", name=re.compile("^Messages"))).to_be_visible()
    finally:
        context.close()


def test_a_signed_out_visitor_reads_the_browsers_language(browser, live_server) -> None:
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/portal/")
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        expect(page.get_by_role("heading", name="Connexion")).to_be_visible(timeout=30_000)
        expect(page.locator("#signed-out-text")).to_have_text(
            "Ouvrez le lien de connexion que vous avez reçu pour voir vos messages."
        )
    finally:
        context.close()
