"""A push endpoint is a URL as the browser serializes it (ASCII: its host in punycode, the rest
percent-encoded), so at most 2,000 bytes. One of 2,000 characters of other scripts is up to
8,000 bytes, past what PostgreSQL's unique index on the endpoint can hold: it was a 500 there.
It is a clear 422 on both databases, and the longest ASCII endpoint is kept."""

import random
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from clientdesk.delivery.models import PushSubscription
from clientdesk.delivery.ssrf import MAX_URL_LENGTH

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = "/portal/api/v1/push/subscriptions"
KEYS = {
    "p256dh": (
        "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
    ),
    "auth": "tBHItJI5svbpez7KI4CCXg",
}
BASE = "http://127.0.0.1:9/push/"


@pytest.fixture
def portal(
    portal_for: Callable[[Client], APIClient], client_obj: Client, settings: Any
) -> APIClient:
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True  # a loopback endpoint, never sent to here
    return portal_for(client_obj)


def subscribe(portal: APIClient, endpoint: str) -> Any:
    return portal.post(SUBSCRIPTIONS, {"endpoint": endpoint, "keys": KEYS}, format="json")


@pytest.mark.parametrize(
    "tail",
    [
        # Incompressible four-byte characters: 2,000 of them are about 8,000 bytes.
        "".join(chr(random.Random(7).randrange(0x20000, 0x2A6DF)) for _ in range(1975)),
        "é",
        "\u202egnp.exe",
    ],
    ids=["cjk-extension-b", "one-accent", "bidi-override"],
)
def test_an_endpoint_that_is_not_ascii_is_refused(portal: APIClient, tail: str) -> None:
    answer = subscribe(portal, BASE + tail)
    assert answer.status_code == 422, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    assert "ASCII" in answer.json()["detail"]
    assert not PushSubscription.objects.exists()


def test_the_longest_ascii_endpoint_is_kept(portal: APIClient) -> None:
    endpoint = BASE + "%F0%9F%98%80" * ((MAX_URL_LENGTH - len(BASE)) // 12)
    endpoint += "a" * (MAX_URL_LENGTH - len(endpoint))
    assert len(endpoint) == MAX_URL_LENGTH
    answer = subscribe(portal, endpoint)
    assert answer.status_code == 201, answer.content
    assert PushSubscription.objects.get().endpoint == endpoint
