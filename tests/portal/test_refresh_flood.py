"""A client refreshing its session in a loop: every refresh answers with a working token, but
the session's end moves (and the ledger records it) at most once a minute, so a loop cannot fill
the ledger or hold its lock; a session near its end is still renewed at once."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client
from clientdesk.portal.models import PortalSession

pytestmark = pytest.mark.django_db

REFRESH = "/portal/api/v1/session/refresh"


def bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def recorded() -> int:
    return AuditEntry.objects.filter(action="portal.session_refreshed").count()


def test_a_refresh_loop_writes_at_most_one_record_a_minute(
    portal_for: Callable[[Client], APIClient], client_obj: Client
) -> None:
    portal = portal_for(client_obj)
    session = PortalSession.objects.get(client=client_obj)
    token = portal.token  # type: ignore[attr-defined]
    for _ in range(40):
        answer = bearer(token).post(REFRESH)
        assert answer.status_code == 200, answer.content
        token = answer.json()["token"]
    assert bearer(token).get("/portal/api/v1/messages").status_code == 200
    # Just issued, the session already lasted its full 15 minutes: nothing moved.
    assert recorded() == 0

    # Near its end, the next refresh renews it at once, once.
    PortalSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() + timedelta(seconds=30)
    )
    for _ in range(20):
        answer: Any = bearer(token).post(REFRESH)
        assert answer.status_code == 200, answer.content
        token = answer.json()["token"]
    assert recorded() == 1
    session.refresh_from_db()
    assert session.expires_at - timezone.now() > timedelta(minutes=14)
    assert answer.json()["expires_at"].startswith(session.expires_at.strftime("%Y-%m-%dT%H:%M"))
    assert bearer(token).get("/portal/api/v1/messages").status_code == 200
