"""Shared fixtures: staff users per role built through the real roles, clients through the real
service, and an API client that authenticates with a real bearer token."""

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from clientdesk.accounts.models import User
from clientdesk.accounts.roles import ROLES
from clientdesk.accounts.services import api_token_create
from clientdesk.clients.models import Client
from clientdesk.clients.services import client_create

_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _static_from_app_directories(settings: Any) -> None:
    """Serve static files from the apps, as `DEBUG` does, so tests need no collectstatic."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True


@pytest.fixture(autouse=True)
def _ledger_rows_flushable(request: pytest.FixtureRequest) -> Any:
    """Let the flush after a transactional test empty the append-only ledger tables on SQLite
    (Django flushes with DELETE there; PostgreSQL's TRUNCATE fires no row trigger)."""
    from django.db import connections

    from clientdesk.audit.append_only import connections_in_maintenance

    connection = connections["default"]
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and marker.kwargs.get("transaction")) or bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
    )
    if transactional:
        request.getfixturevalue("_django_db_helper")  # set up first, so its flush runs after us
    connections_in_maintenance.discard(connection)  # each test starts with the triggers on
    yield
    if transactional:  # until the next test starts
        connections_in_maintenance.add(connection)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Argon2 is slow on purpose; tests use a fast hasher, except the one that checks Argon2
    (tests/accounts/test_roles_and_login.py)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _two_factor_not_required(settings: Any) -> None:
    """Without DEBUG, settings require two-factor sign-in of Administrators; tests sign in with
    `force_login` and check other things, so only the two-factor tests turn it back on
    (tests/accounts/test_administration_two_factor.py)."""
    settings.CLIENTDESK_REQUIRE_2FA_FOR = []


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(role: str | None = "Agent", **fields: Any) -> User:
        n = next(_counter)
        fields.setdefault("username", f"{(role or 'norole').lower()}{n}")
        fields.setdefault("first_name", (role or "No role").split()[0])
        fields.setdefault("last_name", f"User{n}")
        password = fields.pop("password", "correct horse battery staple")
        user = User.objects.create_user(password=password, **fields)
        if role:
            assert role in ROLES
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def agent(make_user: Callable[..., User]) -> User:
    return make_user("Agent", first_name="Alex", last_name="Agent")


@pytest.fixture
def viewer(make_user: Callable[..., User]) -> User:
    return make_user("Viewer")


@pytest.fixture
def make_client(db: None) -> Callable[..., Client]:
    def make(**fields: Any) -> Client:
        n = next(_counter)
        fields.setdefault("external_id", f"EXT-{n:06d}")
        fields.setdefault("first_name", "Zoë")
        fields.setdefault("last_name", f"Ångström{n}")
        fields.setdefault("email", f"client{n}@example.com")
        fields.setdefault("phone", f"+44 20 7946 {n:04d}")
        return client_create(**fields)

    return make


@pytest.fixture
def client_obj(make_client: Callable[..., Client]) -> Client:
    return make_client(first_name="Zoë", last_name="Müller", email="zoe@example.com")


@pytest.fixture
def api_for() -> Callable[[User], APIClient]:
    def make(user: User) -> APIClient:
        _, token = api_token_create(user=user)
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return api

    return make


@pytest.fixture
def asgi_server() -> Iterator[int]:
    """The real ASGI app under uvicorn on a free loopback port."""
    import threading
    import time

    import uvicorn

    config = uvicorn.Config(
        "clientdesk.asgi:application",
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(timeout=20)
