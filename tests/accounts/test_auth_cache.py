"""API tokens and permission sets kept in process memory for a few seconds
(accounts/auth_cache.py): a request that finds them there reads nothing to authenticate; a
revoke, a deactivation or a change of roles or permissions is refused at once in the process
that made it, and in another process within CLIENTDESK_AUTH_CACHE_SECONDS."""

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from clientdesk.accounts import auth_cache
from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.selectors import user_for_api_token
from clientdesk.accounts.services import api_token_create, api_token_revoke, user_roles_set
from tests.servers import procfile_process

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache() -> Any:
    auth_cache.forget_all()
    yield
    auth_cache.forget_all()


def _api(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def _send(api: APIClient, client_obj: Any, n: int = 0) -> Any:
    return api.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": f"Statement {n} is ready."},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"key-{n}-{time.monotonic_ns()}",
    )


def _auth_queries(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if "accounts_apitoken" in q["sql"] or "auth_permission" in q["sql"]
    ]


def test_a_token_found_in_the_cache_reads_no_token_user_or_permission(agent, client_obj):
    _, token = api_token_create(user=agent)
    api = _api(token)
    with CaptureQueriesContext(connection) as first:
        assert _send(api, client_obj, 1).status_code == 201
    assert len(_auth_queries(first)) >= 2  # the token with its user, and the permissions
    with CaptureQueriesContext(connection) as second:
        assert _send(api, client_obj, 2).status_code == 201
    assert _auth_queries(second) == []
    assert len(second.captured_queries) <= len(first.captured_queries) - 2


def test_each_request_gets_its_own_user_object(agent):
    _, token = api_token_create(user=agent)
    first = user_for_api_token(token=token)
    second = user_for_api_token(token=token)
    assert first is not None and second is not None
    assert first is not second and first.pk == second.pk == agent.pk
    first.first_name = "Changed in one request"
    assert second.first_name == agent.first_name
    assert user_for_api_token(token=token).first_name == agent.first_name  # type: ignore[union-attr]


def test_a_revoked_token_is_refused_by_the_next_request(agent, client_obj):
    row, token = api_token_create(user=agent)
    api = _api(token)
    assert _send(api, client_obj, 1).status_code == 201
    api_token_revoke(token=row, actor=None)
    response = _send(api, client_obj, 2)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_a_deleted_token_is_refused_by_the_next_request(agent, client_obj):
    row, token = api_token_create(user=agent)
    api = _api(token)
    assert api.get(f"/api/v1/clients/{client_obj.id}").status_code == 200
    row.delete()
    assert api.get(f"/api/v1/clients/{client_obj.id}").status_code == 401


def test_a_deactivated_user_is_refused_by_the_next_request(agent, client_obj):
    _, token = api_token_create(user=agent)
    api = _api(token)
    assert _send(api, client_obj, 1).status_code == 201
    agent.is_active = False
    agent.save()
    assert _send(api, client_obj, 2).status_code == 401


def test_a_removed_role_is_refused_by_the_next_request(agent, client_obj):
    _, token = api_token_create(user=agent)
    api = _api(token)
    assert _send(api, client_obj, 1).status_code == 201
    user_roles_set(actor=None, user=agent, roles=["Viewer"])
    response = _send(api, client_obj, 2)
    assert response.status_code == 403
    assert "Send a private message" in response.json()["detail"]
    assert api.get(f"/api/v1/clients/{client_obj.id}/messages").status_code == 200


def test_a_permission_taken_from_the_role_is_refused_by_the_next_request(make_user, client_obj):
    role = Group.objects.create(name="Senders")
    send = Permission.objects.get(
        content_type__app_label="messaging", codename="send_private_message"
    )
    view = Permission.objects.get(content_type__app_label="clients", codename="view_client")
    role.permissions.add(send, view)
    user = make_user(None)
    user.groups.add(role)
    _, token = api_token_create(user=user)
    api = _api(token)
    assert _send(api, client_obj, 1).status_code == 201
    role.permissions.remove(send)
    assert _send(api, client_obj, 2).status_code == 403
    role.permissions.add(send)
    assert _send(api, client_obj, 3).status_code == 201
    user.user_permissions.add(send)
    role.permissions.remove(send)
    assert _send(api, client_obj, 4).status_code == 201  # held by the user itself
    user.user_permissions.remove(send)
    assert _send(api, client_obj, 5).status_code == 403


def test_a_promotion_to_superuser_is_seen_by_the_next_request(make_user, client_obj):
    user = make_user("Viewer")
    _, token = api_token_create(user=user)
    api = _api(token)
    assert _send(api, client_obj, 1).status_code == 403
    user.is_superuser = True
    user.save()
    assert _send(api, client_obj, 2).status_code == 201


def test_a_lookup_that_began_before_a_change_stores_nothing(agent):
    since = auth_cache.generation()
    auth_cache.changed()
    auth_cache.permissions_store(
        agent.pk, frozenset({"messaging.send_private_message"}), since=since
    )
    assert auth_cache.permissions_get(agent.pk) is None
    auth_cache.permissions_store(agent.pk, frozenset({"x.y"}), since=auth_cache.generation())
    assert auth_cache.permissions_get(agent.pk) == frozenset({"x.y"})


def test_entries_expire_after_the_setting(agent, settings):
    settings.AUTH_CACHE_SECONDS = 0.3
    _, token = api_token_create(user=agent)
    assert user_for_api_token(token=token) is not None
    # A change no signal announces (a bulk update, or another process): seen once expired.
    User.objects.filter(pk=agent.pk).update(is_active=False)
    deadline = time.monotonic() + 30
    while user_for_api_token(token=token) is not None:
        assert time.monotonic() < deadline, "the entry never expired"
        time.sleep(0.05)


def test_zero_seconds_turns_the_cache_off(agent, settings):
    settings.AUTH_CACHE_SECONDS = 0
    _, token = api_token_create(user=agent)
    assert user_for_api_token(token=token) is not None
    User.objects.filter(pk=agent.pk).update(is_active=False)
    assert user_for_api_token(token=token) is None


@pytest.mark.django_db(transaction=True)
def test_a_lookup_racing_an_uncommitted_revoke_is_forgotten_when_it_commits(make_user):
    """Another thread reads the token while the revoke is not yet committed (the old row, still
    valid) and stores it after the revoke emptied the cache: the commit empties it again."""
    user = make_user("Agent")
    row, token = api_token_create(user=user)
    # Used just now: the other request only reads (no last_used_at write waiting on the row).
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    seen: list[Any] = []

    def other_request() -> None:
        try:
            seen.append(user_for_api_token(token=token))
        finally:
            connection.close()

    with transaction.atomic():
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
        thread = threading.Thread(target=other_request)
        thread.start()
        thread.join(30)
        assert not thread.is_alive()
        assert seen and seen[0] is not None  # it read the committed row: not yet revoked
    assert user_for_api_token(token=token) is None
    assert ApiToken.objects.get(pk=row.pk).revoked_at is not None


@pytest.mark.django_db(transaction=True)
def test_another_process_refuses_a_revoked_token_within_the_setting(make_user, tmp_path: Path):
    """The web server (Procfile `web`) hears no signal from this process: it refuses the token
    once its entry expires, within CLIENTDESK_AUTH_CACHE_SECONDS."""
    user = make_user("Agent")
    row, token = api_token_create(user=user)
    seconds = 2.0
    headers = {"Authorization": f"Bearer {token}"}
    with procfile_process(
        "web", tmp_path / "web.log", CLIENTDESK_AUTH_CACHE_SECONDS=str(seconds)
    ) as (url, _):
        assert httpx.get(f"{url}/api/v1/clients", headers=headers, timeout=30).status_code == 200
        api_token_revoke(token=row, actor=None)
        revoked = time.monotonic()
        while True:
            asked = time.monotonic()
            status = httpx.get(f"{url}/api/v1/clients", headers=headers, timeout=30).status_code
            if status == 401:
                break
            assert status == 200
            # Accepted only while an entry made before the revoke may still live.
            assert asked - revoked < seconds + 0.5, "a revoked token outlived the cache bound"
            time.sleep(0.1)


def test_a_send_with_its_token_cached_runs_no_more_statements_than_measured(agent, client_obj):
    """A regression bound on a send's statements to a client with a conversation and no running
    clock, no outgoing endpoint (docs/PERFORMANCE.md "Send path"): no token, user or permission
    read, no clock closed, the conversation read and updated once."""
    _, token = api_token_create(user=agent)
    api = _api(token)
    assert _send(api, client_obj, 1).status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert _send(api, client_obj, 2).status_code == 201
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))  # the test's transaction
    ]
    # PostgreSQL also locks the client, takes the live-event lock and notifies.
    most = {"postgresql": 13, "sqlite": 10}[connection.vendor]
    assert len(statements) <= most, statements
