"""The one-click unsubscribe link (RFC 8058): POSTed by a mail system with no cookie and no token,
it turns outreach off, once, for the client it was signed for and no other; a GET only asks.
Against the real app on loopback."""

import re
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.consent import unsubscribe_token
from clientdesk.clients.models import Client
from clientdesk.clients.services import client_update
from tests.portal.unsubscribing import ONE_CLICK, app_client, consent_changes, one_click

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app(asgi_server: int, settings: Any) -> Iterator[httpx.Client]:
    """The real app on loopback, its address Clientdesk's public one; each request goes bare,
    as a mail system's does."""
    yield from app_client(asgi_server, settings)


def test_a_get_asks_and_changes_nothing(app, make_client):
    """Link checkers and mail scanners fetch links: a GET must not unsubscribe."""
    client = make_client(language="de")
    url = f"/portal/unsubscribe/{unsubscribe_token(client)}"
    for _ in range(2):
        page = app.get(url)
        assert page.status_code == 200
        assert '<html lang="de">' in page.text
        form = r'<form method="post">.*<button type="submit">Abmelden</button>'
        assert re.search(form, page.text, re.S)
        assert "Nachrichten zu Ihrem Konto erhalten Sie immer" in page.text
    assert app.head(url).status_code == 200
    client.refresh_from_db()
    assert client.outreach_opt_out is False
    assert not consent_changes(client)


def test_repeated_posts_answer_alike_and_record_once(app, make_client):
    client = make_client()
    url = f"/portal/unsubscribe/{unsubscribe_token(client)}"
    answers = [one_click(app, url) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.text for a in answers}) == 1
    assert len(consent_changes(client)) == 1
    # The page's own button posts a form; an empty POST works as well.
    assert app.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert app.post(url).status_code == 200
    assert len(consent_changes(client)) == 1


def test_a_token_opens_only_its_own_client(app, make_client):
    one, other = make_client(), make_client()
    assert one_click(app, f"/portal/unsubscribe/{unsubscribe_token(other)}").status_code == 200
    one.refresh_from_db()
    other.refresh_from_db()
    assert (one.outreach_opt_out, other.outreach_opt_out) == (False, True)
    assert not consent_changes(one)


def test_tampered_and_hostile_tokens_are_refused_and_change_nothing(app, make_client):
    client = make_client()
    other = make_client()
    token = unsubscribe_token(client)
    value, signature = token.split(".")
    flipped = signature[:-1] + ("B" if signature.endswith("A") else "A")
    hostile = [
        f"{value}.{flipped}",
        f"{other.pk.hex}.{signature}",  # another client's id under this client's signature
        value,
        f"{value}.",
        "x" * 5000,
        urllib.parse.quote("<script>alert(1)<\\script>", safe=""),
        urllib.parse.quote("é" * 40),
        "%ED%A0%80",  # a lone surrogate, UTF-8 encoded
    ]
    for bad in hostile:
        for method in ("GET", "POST"):
            response = app.request(
                method,
                f"/portal/unsubscribe/{bad}",
                content=ONE_CLICK if method == "POST" else None,
            )
            assert response.status_code == 404, (bad, method, response.status_code)
            assert "This unsubscribe link is not valid" in response.text
            assert "<script>" not in response.text
    # A NUL anywhere in a URL is refused before any view, as everywhere on the site.
    assert one_click(app, f"/portal/unsubscribe/%00{token}").status_code == 422
    assert one_click(app, f"/portal/unsubscribe/{token}%00").status_code == 422
    for someone in (client, other):
        someone.refresh_from_db()
        assert someone.outreach_opt_out is False
    assert not AuditEntry.objects.filter(action="client.consent_changed").exists()


def test_a_deactivated_client_or_a_gone_client(app, agent, make_client):
    client = make_client()
    client_update(actor=agent, client_id=client.id, changes={"is_active": False})
    url = f"/portal/unsubscribe/{unsubscribe_token(client)}"
    for response in (app.get(url), one_click(app, url)):
        assert response.status_code == 410
        assert "This account is closed" in response.text
    assert not consent_changes(client)
    stranger = Client(pk=uuid.uuid4())
    assert one_click(app, f"/portal/unsubscribe/{unsubscribe_token(stranger)}").status_code == 404


def test_other_methods_are_refused(app, make_client):
    url = f"/portal/unsubscribe/{unsubscribe_token(make_client())}"
    for method in ("PUT", "DELETE", "PATCH"):
        assert app.request(method, url).status_code == 405
