"""`manage.py portal_link`: a one-time sign-in link that exchanges once for a session."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from clientdesk.portal.models import PortalLink

pytestmark = pytest.mark.django_db


def link_for(identifier: str) -> str:
    out = io.StringIO()
    call_command("portal_link", identifier, "--base-url", "http://127.0.0.1:8400", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_the_link_exchanges_once_by_id_or_external_id(client, client_obj) -> None:
    for identifier in (str(client_obj.id), client_obj.external_id):
        url = link_for(identifier)
        assert url.startswith("http://127.0.0.1:8400/portal/#code=")
        code = url.split("#code=")[1]
        first = client.post(
            "/portal/api/v1/session", {"code": code}, content_type="application/json"
        )
        assert first.status_code == 201
        assert first.json()["client_id"] == str(client_obj.id)
        again = client.post(
            "/portal/api/v1/session", {"code": code}, content_type="application/json"
        )
        assert again.status_code == 410
        assert again["Content-Type"] == "application/problem+json"
        assert "already used or has expired" in again.json()["detail"]


def test_an_expired_or_unknown_code_is_refused(client, client_obj) -> None:
    code = link_for(client_obj.external_id).split("#code=")[1]
    PortalLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for attempt in (code, "made-up", "x" * 100):
        response = client.post(
            "/portal/api/v1/session", {"code": attempt}, content_type="application/json"
        )
        assert response.status_code == 410
    for hostile in ("", "x" * 101, None, ["a"], "\u0000"):
        response = client.post(
            "/portal/api/v1/session", {"code": hostile}, content_type="application/json"
        )
        assert response.status_code == 422
        assert "code" in response.json()["errors"]


def test_an_unknown_client_is_an_error() -> None:
    with pytest.raises(CommandError, match="No client"):
        link_for("nobody-has-this-id")


def test_the_cabinet_page_is_served(client) -> None:
    page = client.get("/portal/")
    assert page.status_code == 200
    assert b"portal/cabinet.js" in page.content
    assert b"<script>" not in page.content  # no inline script: the CSP forbids it
