"""Portal fixtures: an Integration service account and sessions minted through the real API."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client


@pytest.fixture
def integration(make_user: Callable[..., User]) -> User:
    return make_user("Integration", first_name="Portal", last_name="Backend")


@pytest.fixture
def integration_api(integration: User, api_for: Callable[[User], APIClient]) -> APIClient:
    return api_for(integration)


@pytest.fixture
def portal_for(integration_api: APIClient) -> Callable[[Client], APIClient]:
    """An API client holding a fresh portal session token for `client`."""

    def make(client: Client) -> APIClient:
        response = integration_api.post(
            "/api/v1/portal/sessions", {"client_id": str(client.id)}, format="json"
        )
        assert response.status_code == 201, response.content
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
        api.token = response.json()["token"]  # type: ignore[attr-defined]
        return api

    return make


def reply(api: APIClient, body: Any, key: str = "k-1", **extra: Any) -> Any:
    return api.post(
        "/portal/api/v1/messages",
        {"body": body, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
