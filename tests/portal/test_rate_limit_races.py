"""Racing requests against the sign-in link limits: many requests at once for one address, or
from one network address, send no more links than the limits allow (PostgreSQL reads each count
in its own snapshot; without taking turns every racer saw room for one more)."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from clientdesk.delivery.models import Channel, Delivery
from clientdesk.portal.models import PortalLinkRequest
from tests.racing import race

pytestmark = pytest.mark.django_db(transaction=True)

LINK = "/portal/api/v1/session/link"


def ask(email: str, ip: str) -> Any:
    return APIClient().post(LINK, {"email": email}, format="json", REMOTE_ADDR=ip)


def test_racing_requests_for_one_address_send_at_most_the_limit(
    make_client: Callable[..., Client], settings: Any
) -> None:
    settings.PORTAL_LINK_REQUEST_SECONDS = 0.0
    victim = make_client(email="victim@example.de")
    # Case and spaces vary, as an attacker would vary them to pass the limit.
    variants = [
        "victim@example.de",
        "VICTIM@example.de",
        " victim@EXAMPLE.DE ",
        "Victim@Example.De",
    ]
    results, errors = race(12, lambda n: ask(variants[n % 4], f"192.0.2.{n}").status_code)
    assert errors == []
    limit = settings.PORTAL_LINK_REQUESTS_PER_ADDRESS
    assert sorted(results) == [202] * limit + [429] * (12 - limit)
    assert Delivery.objects.filter(channel=Channel.EMAIL, client=victim).count() == limit
    assert PortalLinkRequest.objects.count() == limit


def test_racing_requests_from_one_network_address_count_every_one(
    make_client: Callable[..., Client], settings: Any
) -> None:
    settings.PORTAL_LINK_REQUEST_SECONDS = 0.0
    settings.PORTAL_LINK_REQUESTS_PER_IP = 4
    for n in range(12):
        make_client(email=f"client{n}@example.org")
    results, errors = race(12, lambda n: ask(f"client{n}@example.org", "198.51.100.9").status_code)
    assert errors == []
    assert sorted(results) == [202] * 4 + [429] * 8
    assert Delivery.objects.filter(channel=Channel.EMAIL).count() == 4
