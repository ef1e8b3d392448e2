"""What a mail system does with a one-click unsubscribe link (RFC 8058), for the tests."""

from collections.abc import Iterator
from typing import Any

import httpx

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client

ONE_CLICK = "List-Unsubscribe=One-Click"


def app_client(port: int, settings: Any) -> Iterator[httpx.Client]:
    """A client of the real app on `port`, which is also Clientdesk's public address."""
    settings.PUBLIC_URL = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=settings.PUBLIC_URL, timeout=30, follow_redirects=False) as client:
        yield client


def one_click(app: httpx.Client, url: str, **extra: Any) -> httpx.Response:
    """What a mail system sends (RFC 8058 section 3.2): a POST of the one-click body, nothing
    else: no cookie, no CSRF token, no Referer or Origin."""
    app.cookies.clear()
    return app.post(
        url,
        content=ONE_CLICK,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        **extra,
    )


def consent_changes(client: Client) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(action="client.consent_changed", object_id=str(client.pk))
    )
