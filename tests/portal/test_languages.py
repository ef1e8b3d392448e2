"""The cabinet, the portal API, the portal e-mails and the unsubscribe page in the client's
language: German, French, Spanish, European and Brazilian Portuguese, their base language for a
regional code, English for anything else, hostile codes included."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import Client as PageClient
from django.utils import timezone, translation
from rest_framework.test import APIClient

from clientdesk.clients.consent import unsubscribe_token
from clientdesk.clients.models import Client
from clientdesk.core.languages import supported_language
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import OutgoingEndpoint, PushSubscription
from clientdesk.delivery.worker import Worker
from clientdesk.messaging.models import Category, Direction, Message
from clientdesk.messaging.outbound import email_payload
from clientdesk.messaging.push import push_payload
from clientdesk.messaging.services.writing import MessageWrite, messages_write
from tests.mail import Inbox, smtp_inbox
from tests.portal.unsubscribing import app_client, one_click

pytestmark = pytest.mark.django_db

HOSTILE = [
    "../",
    "../../etc/passwd",
    "..\\..\\",
    "de\x00",
    "\x00",
    "de/../fr",
    "x" * 10_240,
    "de-" * 3_000,
    "\ud800",
    "<script>alert(1)</script>",
    "de\nfr",
    "",
    None,
    42,
]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("de", "de"),
        ("DE", "de"),
        ("de-at", "de"),
        ("fr-ca", "fr"),
        ("es-419", "es"),
        ("pt", "pt"),
        ("pt-pt", "pt"),
        ("pt-br", "pt-br"),
        ("pt-BR", "pt-br"),
        ("pt_BR", "pt-br"),
        ("en-gb", "en"),
        ("xx", "en"),
        ("sw", "en"),
        ("zh-hans", "en"),
    ],
)
def test_a_code_reads_in_itself_its_base_language_or_english(code, expected) -> None:
    assert supported_language(code) == expected


@pytest.mark.parametrize("code", HOSTILE, ids=lambda c: repr(c)[:20])
def test_a_hostile_code_is_english(code) -> None:
    assert supported_language(code) == "en"


# --- the cabinet page and its script's catalog ----------------------------------------------

# (language, <html lang>, a button's name, a text of the page, the catalog's plural of "new")
CABINETS = [
    ("de", "de", "Antwort senden", "Benachrichtigungseinstellungen", "neue Nachrichten"),
    ("fr", "fr", "Envoyer la réponse", "Paramètres de notification", "nouveaux messages"),
    ("es", "es", "Enviar respuesta", "Configuración de notificaciones", "mensajes nuevos"),
    ("pt", "pt", "Enviar resposta", "Definições de notificações", "mensagens novas"),
    ("pt-br", "pt-br", "Enviar resposta", "Configurações de notificação", "novas mensagens"),
    ("xx", "en", "Send reply", "Notification settings", ""),
]


@pytest.mark.parametrize(("language", "lang", "button", "text", "plural"), CABINETS)
def test_the_cabinet_speaks_the_language_it_is_asked_for(
    language, lang, button, text, plural, settings
) -> None:
    settings.BUSINESS_NAME = "Acme <Wealth>"
    page = PageClient().get("/portal/", {"lang": language})
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<html lang="{lang}">' in html
    assert f'<button type="submit">{button}</button>' in html
    assert text in html
    assert "Acme &lt;Wealth&gt;" in html and "<Wealth>" not in html
    # The script's words come from the catalog the page loads first, in the same language.
    (catalog,) = re.findall(r'<script src="(/portal/i18n/[^"]+\.js)" defer>', html)
    assert catalog == f"/portal/i18n/{lang}.js"
    # before every script of the page, so that each finds gettext when it runs
    assert re.search(r'<script src="([^"]+)"', html).group(1) == catalog
    script = PageClient().get(catalog)
    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    if plural:
        assert plural in script.content.decode()
    else:  # English is the source: an empty catalog
        assert "newcatalog" not in script.content.decode()


def test_before_sign_in_the_page_follows_the_browser() -> None:
    page = PageClient().get("/portal/", HTTP_ACCEPT_LANGUAGE="fr-CH, fr;q=0.9, en;q=0.5")
    assert '<html lang="fr">' in page.content.decode()
    page = PageClient().get("/portal/", HTTP_ACCEPT_LANGUAGE="ja")
    assert '<html lang="en">' in page.content.decode()


@pytest.mark.parametrize("language", ["../", "de/../fr", "x" * 10_240, "<b>", "de\u202e"])
def test_a_hostile_lang_parameter_gets_the_english_page(language) -> None:
    page = PageClient().get("/portal/", {"lang": language})
    assert page.status_code == 200
    assert '<html lang="en">' in page.content.decode()


@pytest.mark.parametrize("path", ["xx", "EN", "pt_BR", "..", "de.js", "x" * 300])
def test_a_catalog_exists_only_for_clientdesks_languages(path) -> None:
    assert PageClient().get(f"/portal/i18n/{path}.js").status_code == 404


def test_plural_forms_follow_each_language() -> None:
    """French and Brazilian Portuguese say "0 nouveau message" (singular), the others plural."""
    for language, formula in [("fr", "(n > 1)"), ("pt-br", "(n > 1)"), ("de", "(n != 1)")]:
        script = PageClient().get(f"/portal/i18n/{language}.js").content.decode()
        assert formula in script, language


# --- the portal API for a signed-in client ----------------------------------------------------


def _client(make_client, language: str, zone: str = "") -> Client:
    client = make_client()
    # Stored as-is: an import or an old row may hold any code, known to Django or not.
    Client.objects.filter(pk=client.pk).update(language=language, timezone=zone)
    client.refresh_from_db()
    return client


@pytest.mark.parametrize(
    ("stored", "language"),
    [
        ("de", "de"),
        ("fr", "fr"),
        ("es", "es"),
        ("pt", "pt"),
        ("pt-br", "pt-br"),
        ("de-at", "de"),
        ("xx", "en"),
        ("../", "en"),
        ("..\\..", "en"),
        ("<b>", "en"),
    ],
)
def test_the_locale_api_names_the_language_the_client_reads(
    portal_for, make_client, stored, language
) -> None:
    response = portal_for(_client(make_client, stored, "America/Sao_Paulo")).get(
        "/portal/api/v1/locale"
    )
    assert response.status_code == 200
    assert response.json() == {"language": language, "timezone": "America/Sao_Paulo"}


def test_a_client_without_a_zone_reads_times_in_the_outreach_default(
    portal_for, make_client, make_user, api_for
) -> None:
    administrator = make_user("Administrator")
    client = _client(make_client, "de")
    assert portal_for(client).get("/portal/api/v1/locale").json()["timezone"] == "UTC"
    api_for(administrator).put(
        "/api/v1/settings/outreach",
        {"quiet_hours": None, "default_timezone": "Europe/Lisbon", "max_outreach_per_week": None},
        format="json",
    )
    assert portal_for(client).get("/portal/api/v1/locale").json()["timezone"] == "Europe/Lisbon"


def test_the_locale_api_needs_the_clients_session(make_client, api_for, agent) -> None:
    assert PageClient().get("/portal/api/v1/locale").status_code == 401
    assert api_for(agent).get("/portal/api/v1/locale").status_code == 401


def test_the_portal_api_answers_in_the_clients_language_and_leaves_none_behind(
    portal_for, make_client
) -> None:
    api = portal_for(_client(make_client, "de"))
    response = api.put("/portal/api/v1/preferences", {"outreach_opt_out": "yes"}, format="json")
    assert response.status_code == 422
    (error,) = response.json()["errors"]["outreach_opt_out"]
    assert error == "Muss ein gültiger Wahrheitswert sein."
    assert translation.get_language() in {"en", "en-us"}
    english = portal_for(_client(make_client, "xx"))
    response = english.put("/portal/api/v1/preferences", {"outreach_opt_out": 1}, format="json")
    assert response.json()["errors"]["outreach_opt_out"] == ["Must be a valid boolean."]


# --- the e-mails ------------------------------------------------------------------------------


@pytest.fixture
def inbox(settings: Any) -> Iterator[Inbox]:
    """A real SMTP server on loopback, Clientdesk's e-mail channel on."""
    OutgoingEndpoint.objects.create(
        pk=1, url="https://example.invalid/x", enabled=False, email_enabled=True
    )
    with smtp_inbox(settings, PUBLIC_URL="https://clientdesk.example") as inbox:
        yield inbox


def write(agent: Any, client: Client, body: str, category: Category) -> Message:
    (result,) = messages_write(
        writes=[
            MessageWrite(
                client=client,
                direction=Direction.OUT,
                sender=agent,
                body=body,
                meta=RequestMeta(),
                category=category,
            )
        ]
    )
    assert result.message is not None
    return result.message


def _texts(mail: Any) -> tuple[str, str]:
    return (
        mail.get_body(preferencelist=("plain",)).get_content(),
        mail.get_body(preferencelist=("html",)).get_content(),
    )


def test_a_german_client_gets_the_e_mail_frame_in_german_around_the_staffs_own_text(
    inbox, agent, make_client
) -> None:
    anna = make_client(language="de", email="anna@example.de")
    write(agent, anna, "Your statement is ready. <b>Not markup</b>", Category.OUTREACH)
    Worker(concurrency=1, name="mailer").run_once()
    (mail,) = inbox.messages
    assert mail["Subject"] == "Eine Nachricht von Acme Wealth"
    text, html = _texts(mail)
    # The message is the staff's text, as written: never translated.
    assert "Your statement is ready. <b>Not markup</b>" in text
    assert "Your statement is ready. &lt;b&gt;Not markup&lt;/b&gt;" in html
    assert "Keine Neuigkeiten und Angebote mehr von Acme Wealth" in text
    assert ">Keine Neuigkeiten und Angebote mehr von Acme Wealth</a>" in html
    assert "Stop news" not in text + html
    assert translation.get_language() in {"en", "en-us"}


def test_the_notification_e_mail_in_each_language(inbox, agent, make_client, settings) -> None:
    settings.EMAIL_NOTIFY_ONLY = True
    settings.PORTAL_URL = "https://bank.example/cabinet"
    expected = {
        "de": ("Neue Nachricht von Acme Wealth", "Sie haben eine neue Nachricht von Acme Wealth"),
        "fr": ("Nouveau message de Acme Wealth", "Vous avez un nouveau message de Acme Wealth"),
        "es": ("Nuevo mensaje de Acme Wealth", "Tiene un mensaje nuevo de Acme Wealth"),
        "pt": ("Nova mensagem de Acme Wealth", "Tem uma nova mensagem de Acme Wealth"),
        "pt-br": ("Nova mensagem de Acme Wealth", "Você tem uma nova mensagem de Acme Wealth"),
        "sw": ("New message from Acme Wealth", "You have a new message from Acme Wealth"),
    }
    for language in expected:
        client = make_client(language=language, email=f"{language}@example.com")
        write(agent, client, "Hi", Category.SERVICE)
    Worker(concurrency=3, name="mailer").run_once()
    Worker(concurrency=3, name="mailer").run_once()
    mails = {mail["To"].split("@")[0]: mail for mail in inbox.messages}
    assert set(mails) == set(expected)
    for language, (subject, line) in expected.items():
        assert mails[language]["Subject"] == subject
        text, _ = _texts(mails[language])
        assert text.startswith(line) and "https://bank.example/cabinet" in text
        assert "Hi" not in text  # a notification: the text stays in the cabinet


@pytest.mark.parametrize("code", HOSTILE, ids=lambda c: repr(c)[:20])
def test_a_hostile_stored_language_gets_the_english_e_mail(
    agent, make_client, settings, code
) -> None:
    settings.BUSINESS_NAME = "Acme Wealth"
    message = write(agent, make_client(email="h@example.com"), "Hi", Category.SERVICE)
    message.client.language = code  # in memory: PostgreSQL stores neither NUL nor 10 KB here
    assert email_payload(message)["subject"] == "A message from Acme Wealth"
    assert translation.get_language() in {"en", "en-us"}


# --- the unsubscribe page ---------------------------------------------------------------------


@pytest.fixture
def app(asgi_server: int, settings: Any) -> Iterator[httpx.Client]:
    yield from app_client(asgi_server, settings)


@pytest.mark.django_db(transaction=True)
def test_the_unsubscribe_page_in_french(app, make_client, settings) -> None:
    settings.BUSINESS_NAME = "Acme Wealth"
    client = make_client(language="fr")
    url = f"/portal/unsubscribe/{unsubscribe_token(client)}"
    page = app.get(url, headers={"Accept-Language": "de"})  # the client's language, not this
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "<title>Se désabonner · Acme Wealth</title>" in page.text
    assert '<button type="submit">Se désabonner</button>' in page.text
    assert "Ne plus recevoir les actualités et offres de Acme Wealth" in page.text
    done = one_click(app, url)
    assert done.status_code == 200
    assert "Vous ne recevrez plus les actualités et offres de Acme Wealth." in done.text
    client.refresh_from_db()
    assert client.outreach_opt_out is True


@pytest.mark.django_db(transaction=True)
def test_a_broken_unsubscribe_link_answers_in_the_browsers_language(app) -> None:
    page = app.get("/portal/unsubscribe/nope", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert page.status_code == 404
    assert '<html lang="fr">' in page.text
    assert "Lien non valide" in page.text


def test_the_sign_in_link_e_mail_in_spanish(inbox, make_client) -> None:
    client = make_client(language="es", email="ana@example.es")
    answer = APIClient().post(
        "/portal/api/v1/session/link", {"email": "ana@example.es"}, format="json"
    )
    assert answer.status_code == 202
    Worker(concurrency=1, name="mailer").run_once()
    (mail,) = [m for m in inbox.messages if m["To"] == client.email]
    assert mail["Subject"] == "Su enlace de acceso para Acme Wealth"
    text, _ = _texts(mail)
    assert text.startswith("Abra este enlace para acceder a su área de cliente en Acme Wealth.")
    assert "Si no lo ha solicitado, ignore este correo: no cambia nada." in text


@pytest.mark.parametrize(
    ("stored", "lang", "notice"),
    [
        ("fr", "fr", "Vous avez un nouveau message de Acme Wealth"),
        ("pt-br", "pt-br", "Você tem uma nova mensagem de Acme Wealth"),
        ("../", "en", "You have a new message from Acme Wealth"),
    ],
)
def test_the_push_notice_in_the_clients_language(
    agent, make_client, settings, stored, lang, notice
) -> None:
    settings.BUSINESS_NAME = "Acme Wealth"
    client = _client(make_client, stored)
    message = write(agent, client, "Your statement", Category.SERVICE)
    now = timezone.now()
    device = PushSubscription(
        client=client,
        endpoint="https://push.example/x",
        p256dh="k",
        auth="a",
        created_at=now,
        updated_at=now,
    )
    notification = push_payload(message, device)["content"]["notification"]
    assert notification["lang"] == lang
    assert notification["body"] == notice


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stored", ["../", "..\\..", "<b>", "de\u202e", "x" * 8])
def test_a_hostile_stored_language_gets_the_english_unsubscribe_page(
    app, make_client, stored
) -> None:
    client = _client(make_client, stored)
    page = app.get(f"/portal/unsubscribe/{unsubscribe_token(client)}")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert '<button type="submit">Unsubscribe</button>' in page.text
