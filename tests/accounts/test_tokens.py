import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from clientdesk.accounts.models import ApiToken
from clientdesk.accounts.services import api_token_revoke, token_digest

pytestmark = pytest.mark.django_db


def _command_token(username: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", username, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1]


def test_create_api_token_prints_a_working_token_stored_only_as_a_hash(agent, client_obj):
    token = _command_token(agent.username)

    row = ApiToken.objects.get(user=agent)
    assert row.digest == token_digest(token)
    assert token not in (row.digest, row.prefix)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api.get(f"/api/v1/clients/{client_obj.id}")
    assert response.status_code == 200
    assert response.json()["id"] == str(client_obj.id)
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_create_api_token_for_unknown_user_fails_clearly(db):
    with pytest.raises(CommandError, match="No staff user named 'ghost'"):
        call_command("create_api_token", "ghost", stdout=io.StringIO(), stderr=io.StringIO())


def test_create_api_token_for_inactive_user_fails_clearly(make_user):
    user = make_user("Agent", is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", user.username, stdout=io.StringIO())


@pytest.mark.parametrize(
    "header",
    [
        "Bearer cd_not-a-real-token",
        "Bearer ",
        "Bearer two words",
    ],
)
def test_unknown_or_malformed_tokens_get_401_problem_json(db, header):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/api/v1/clients")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401
    assert body["detail"]


def test_revoked_token_gets_401(agent):
    call_command("create_api_token", agent.username, stdout=io.StringIO(), stderr=io.StringIO())
    token = _command_token(agent.username)
    row = ApiToken.objects.get(digest=token_digest(token))
    api_token_revoke(token=row)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api.get("/api/v1/clients")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_token_of_deactivated_user_stops_working(agent, api_for):
    api = api_for(agent)
    assert api.get("/api/v1/clients").status_code == 200
    agent.is_active = False
    agent.save()
    assert api.get("/api/v1/clients").status_code == 401


def test_no_credentials_get_401(db):
    response = APIClient().get("/api/v1/clients")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
