"""Every URL × every role of the contract × anonymous: allowed exactly where the contract says.

The URLs come from the URL resolver, so a URL added later without an entry in `MATRIX` fails
`test_every_url_has_a_matrix_entry` by name. To add one: declare its permission on the view
(`@requires(...)` / `required_permissions`), then add `"route": {"METHOD": ROLES_ALLOWED}` here.
"""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from clientdesk.accounts.roles import Role
from clientdesk.accounts.services import api_token_create
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.templates import template_create

pytestmark = pytest.mark.django_db

ADMIN = {Role.ADMINISTRATOR}
SENDERS = {Role.ADMINISTRATOR, Role.MANAGER, Role.AGENT}
TEMPLATE_MANAGERS = {Role.ADMINISTRATOR, Role.MANAGER}
COMPOSERS = SENDERS | TEMPLATE_MANAGERS
# Active templates: who sends them and who writes them (messaging.permissions.READ_TEMPLATES).
TEMPLATE_READERS = SENDERS | TEMPLATE_MANAGERS
READERS = {Role.ADMINISTRATOR, Role.MANAGER, Role.AGENT, Role.VIEWER, Role.INTEGRATION}
CLIENT_WRITERS = {Role.ADMINISTRATOR, Role.MANAGER, Role.AGENT, Role.INTEGRATION}
SIGNED_IN = "any signed-in user, whatever their roles"
CLIENT = "a client's portal session only: no staff user or token"
ISSUERS = {Role.ADMINISTRATOR, Role.INTEGRATION}
EXPORTERS = {Role.ADMINISTRATOR, Role.MANAGER}
BROADCASTERS = {Role.ADMINISTRATOR, Role.MANAGER}
PUBLIC = "anyone"

# route (as the resolver spells it) -> method -> who may
MATRIX: dict[str, dict[str, Any]] = {
    "": {"GET": SIGNED_IN},
    "healthz": {"GET": PUBLIC},
    "livez": {"GET": PUBLIC},
    "readyz": {"GET": PUBLIC},
    # Open unless CLIENTDESK_METRICS_TOKEN is set (tests/core/test_metrics.py).
    "metrics": {"GET": PUBLIC},
    "accounts/login/": {"GET": PUBLIC},
    "accounts/logout/": {"POST": PUBLIC},
    "accounts/profile/": {"GET": SIGNED_IN, "POST": SIGNED_IN},
    "accounts/login/code/": {"GET": PUBLIC, "POST": PUBLIC},
    "accounts/profile/two-factor/": {"GET": SIGNED_IN, "POST": SIGNED_IN},
    "accounts/invitation/<uidb64>/<token>/": {"GET": PUBLIC},
    "administration/": {"GET": ADMIN},
    "administration/users/invite/": {"POST": ADMIN},
    "administration/users/<id:user_id>/": {"GET": ADMIN},
    "administration/users/<id:user_id>/roles/": {"POST": ADMIN},
    "administration/users/<id:user_id>/deactivate/": {"POST": ADMIN},
    "administration/users/<id:user_id>/reactivate/": {"POST": ADMIN},
    "administration/users/<id:user_id>/invitation/": {"POST": ADMIN},
    "administration/users/<id:user_id>/two-factor/reset/": {"POST": ADMIN},
    "administration/tokens/": {"GET": ADMIN},
    "administration/tokens/create/": {"POST": ADMIN},
    "administration/tokens/<id:token_id>/revoke/": {"POST": ADMIN},
    "administration/roles/": {"GET": ADMIN},
    "clients/": {"GET": READERS},
    "clients/<id:client_id>/": {"GET": READERS},
    "clients/<id:client_id>/send/": {"GET": SENDERS},
    "clients/<id:client_id>/messages/": {"POST": SENDERS},
    "clients/<id:client_id>/sent/": {"GET": READERS},
    "deliveries/<id:delivery_id>/retry/": {"POST": SENDERS},
    "templates/": {"GET": TEMPLATE_READERS},
    "templates/new/": {"GET": TEMPLATE_MANAGERS, "POST": TEMPLATE_MANAGERS},
    "templates/preview/": {"POST": COMPOSERS},
    "templates/preview-clients/": {"GET": COMPOSERS},
    "templates/<id:template_id>/": {"GET": TEMPLATE_READERS, "POST": TEMPLATE_MANAGERS},
    "templates/<id:template_id>/active/": {"POST": TEMPLATE_MANAGERS},
    "clients/<id:client_id>/activity/": {"GET": READERS},
    "integrations/clients/<id:client_id>/push-devices/": {"GET": READERS},
    "clients/import/": {"GET": CLIENT_WRITERS, "POST": CLIENT_WRITERS},
    "clients/<id:client_id>/timezone": {"POST": CLIENT_WRITERS},
    "clients/<id:client_id>/consent": {"POST": CLIENT_WRITERS},
    "broadcasts/": {"GET": BROADCASTERS},
    "broadcasts/new/": {"GET": BROADCASTERS},
    "broadcasts/review/": {"POST": BROADCASTERS},
    "broadcasts/send/": {"POST": BROADCASTERS},
    "broadcasts/matching/": {"GET": BROADCASTERS},
    "broadcasts/<id:broadcast_id>/": {"GET": BROADCASTERS},
    "broadcasts/<id:broadcast_id>/progress/": {"GET": BROADCASTERS},
    "broadcasts/<id:broadcast_id>/recipients/": {"GET": BROADCASTERS},
    "broadcasts/<id:broadcast_id>/cancel/": {"POST": BROADCASTERS},
    "integrations/": {"GET": ADMIN},
    "integrations/save/": {"POST": ADMIN},
    "integrations/rotate-secret/": {"POST": ADMIN},
    "integrations/test/": {"POST": ADMIN},
    "api/v1/clients": {"GET": READERS, "POST": CLIENT_WRITERS},
    "api/v1/clients/<id:client_id>": {"GET": READERS, "PATCH": CLIENT_WRITERS},
    "api/v1/clients/import": {"POST": CLIENT_WRITERS},
    "api/v1/clients/<id:client_id>/messages": {"GET": READERS, "POST": SENDERS},
    "api/v1/clients/<id:client_id>/activity": {"GET": READERS},
    "api/v1/clients/<id:client_id>/messages/preview": {"POST": COMPOSERS},
    "api/v1/messages/<id:message_id>": {"GET": READERS},
    "api/v1/integration/outgoing-endpoint": {"GET": ADMIN, "PUT": ADMIN},
    "api/v1/integration/outgoing-endpoint/rotate-secret": {"POST": ADMIN},
    "api/v1/integration/outgoing-endpoint/test": {"POST": ADMIN},
    "api/v1/templates": {"GET": TEMPLATE_READERS, "POST": TEMPLATE_MANAGERS},
    "api/v1/templates/<id:template_id>": {
        "GET": TEMPLATE_READERS,
        "PATCH": TEMPLATE_MANAGERS,
    },
    "api/v1/audit/records": {"GET": ADMIN},
    "api/v1/audit/records/<int:sequence>/proof": {"GET": ADMIN},
    "api/v1/audit/checkpoint": {"GET": ADMIN},
    "api/v1/audit/public-key": {"GET": ADMIN},
    "api/v1/audit/consistency": {"GET": ADMIN},
    "api/v1/events": {"GET": READERS},
    "messages/": {"GET": READERS},
    "settings/follow-up/": {"GET": ADMIN, "POST": ADMIN},
    "api/v1/messages": {"GET": READERS},
    "api/v1/notifications": {"GET": READERS},
    "api/v1/notifications/read": {"POST": READERS},
    "api/v1/settings/follow-up": {"GET": ADMIN, "PUT": ADMIN},
    "api/v1/settings/outreach": {"GET": ADMIN, "PUT": ADMIN},
    "api/v1/broadcasts": {"GET": READERS, "POST": BROADCASTERS},
    "api/v1/broadcasts/<id:broadcast_id>": {"GET": READERS},
    "api/v1/broadcasts/<id:broadcast_id>/recipients": {"GET": READERS},
    "api/v1/broadcasts/<id:broadcast_id>/cancel": {"POST": BROADCASTERS},
    "api/v1/portal/sessions": {"POST": ISSUERS},
    "api/v1/files": {"POST": SENDERS},
    # The uploader, or staff who may view the file's client (files/selectors.py).
    "api/v1/files/<id:file_id>": {"GET": READERS},
    "portal/api/v1/files": {"POST": CLIENT},
    "portal/api/v1/files/<id:file_id>": {"GET": CLIENT},
    # The signed link is the credential: a token that is not one is a 404.
    "files/signed/<token>": {"GET": PUBLIC},
    "portal/": {"GET": PUBLIC},
    "portal/i18n/<language>.js": {"GET": PUBLIC},
    "portal/api/v1/session": {"POST": PUBLIC},
    "portal/api/v1/messages": {"GET": CLIENT, "POST": CLIENT},
    "portal/api/v1/messages/<id:message_id>/read": {"POST": CLIENT},
    "portal/api/v1/events": {"GET": CLIENT},
    "portal/api/v1/session/refresh": {"POST": CLIENT},
    "portal/api/v1/session/end": {"POST": CLIENT},
    "portal/api/v1/session/link": {"POST": PUBLIC},  # rate-limited; says nothing of the address
    "portal/api/v1/preferences": {"GET": CLIENT, "PUT": CLIENT},
    "portal/sw.js": {"GET": PUBLIC},
    "portal/manifest.webmanifest": {"GET": PUBLIC},
    "portal/api/v1/push/key": {"GET": PUBLIC},
    "portal/api/v1/push/subscriptions": {"GET": CLIENT, "POST": CLIENT, "DELETE": CLIENT},
    # The service worker has no session: the push's own signed receipt is the credential.
    "portal/api/v1/push/receipts": {"POST": PUBLIC},
    "portal/api/v1/locale": {"GET": CLIENT},
    # The signed link is the credential (RFC 8058): a token that is not one is a 404 page.
    "portal/unsubscribe/<token>": {"GET": PUBLIC, "POST": PUBLIC},
    "portal/api/<path:path>": {"GET": PUBLIC},
    "api/v1/messages/export": {"GET": EXPORTERS},
    "audit/": {"GET": ADMIN},
    "audit/verify/": {"POST": ADMIN},
    "audit/checkpoint.txt": {"GET": ADMIN},
    "audit/public-key.pem": {"GET": ADMIN},
    "api/schema/": {"GET": PUBLIC},
    "api/docs/": {"GET": PUBLIC},
    "api/<path:path>": {"GET": PUBLIC},
}
# Django's admin keeps its own gate (staff accounts); one entry stands for all its URLs.
ADMIN_SITE = "admin/"
LOGOUT = "accounts/logout/"
# Event streams never end, and read users on their own connection (invisible inside this test's
# transaction): only the anonymous are tried here; tests/core/test_live_events.py tries the
# roles against a real server.
STREAMS = {"api/v1/events", "portal/api/v1/events"}

ACTORS: list[Role | None] = [*Role, None]  # None: signed in with no role


def resolver_routes(
    patterns: Any = None, prefix: str = ""
) -> Iterator[tuple[str, URLPattern | URLResolver]]:
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route == ADMIN_SITE:
                yield route, entry
            else:
                yield from resolver_routes(entry.url_patterns, route)
        else:
            yield route, entry


def test_every_url_has_a_matrix_entry():
    routes = {route for route, _ in resolver_routes()}
    missing = sorted(routes - set(MATRIX) - {ADMIN_SITE})
    assert not missing, f"URLs with no entry in the permission matrix: {missing}"
    assert not sorted(set(MATRIX) - routes), "matrix entries for URLs that no longer exist"


def test_every_view_declares_its_permission():
    undeclared = []
    for route, entry in resolver_routes():
        if route == ADMIN_SITE:
            continue
        callback = entry.callback  # type: ignore[union-attr]
        view_class = getattr(callback, "cls", None)
        if not (
            hasattr(callback, "required_permissions") or hasattr(view_class, "required_permissions")
        ):
            undeclared.append(route)
    assert not undeclared, f"views that declare no permission: {undeclared}"


@pytest.fixture
def objects(make_user, make_client):
    manager = make_user(Role.MANAGER)
    client = make_client()
    version = template_create(author=manager, name="Welcome", body="Hello", language="en")
    sent = message_send(
        sender=manager, client_id=client.id, idempotency_key="m1", meta=RequestMeta(), body="Hi"
    )
    return {
        "client_id": str(client.id),
        "template_id": str(version.template_id),
        "message_id": str(sent.message_id),
        "delivery_id": str(uuid.uuid4()),
        "broadcast_id": str(uuid.uuid4()),  # none: who may ask is what is tried
        "file_id": str(uuid.uuid4()),  # none: who may ask is what is tried
        "path": "v1/nothing-here",
        "sequence": "1",
        "user_id": str(manager.pk),
        "token_id": str(api_token_create(user=manager, name="matrix")[0].pk),
        "uidb64": urlsafe_base64_encode(force_bytes(manager.pk)),
        "token": "set-password",
        "language": "de",
    }


def _url(route: str, objects: dict[str, str]) -> str:
    url = "/" + route
    for name, value in objects.items():
        for converter in ("id", "path", "int"):
            url = url.replace(f"<{converter}:{name}>", value)
        url = url.replace(f"<{name}>", value)
    assert "<" not in url, f"no test object for {route}"
    return url


def _bodies(objects: dict[str, str]) -> dict[str, Any]:
    return {"client_id": objects["client_id"], "body": "Hello", "name": "T", "language": "en"}


def _outcome(response: Any) -> str:
    if response.status_code in (401, 403):
        return "refused"
    if response.status_code == 302 and "/login/" in response.get("Location", ""):
        return "refused"
    return "allowed"


def _expected(allowed: Any, actor: Role | None, anonymous: bool) -> str:
    if allowed == PUBLIC:
        return "allowed"
    if anonymous:
        return "refused"
    if allowed == SIGNED_IN:
        return "allowed"
    if allowed == CLIENT:
        return "refused"
    return "allowed" if actor in allowed else "refused"


@pytest.mark.parametrize("actor", [*ACTORS, "anonymous"], ids=str)
def test_every_url_for_every_role(actor, make_user, objects, api_for, settings):
    anonymous = actor == "anonymous"
    role = None if anonymous else actor
    user = None if anonymous else make_user(role)
    surfaces: dict[str, APIClient] = {"session": APIClient()}
    if user is not None:
        surfaces["session"].force_login(user)
        surfaces["token"] = api_for(user)
    wrong = []
    # Signing out ends the session, so it goes last.
    for route, methods in sorted(MATRIX.items(), key=lambda item: item[0] == LOGOUT):
        url = _url(route, objects)
        for method, allowed in methods.items():
            for surface, http in surfaces.items():
                if surface == "token" and not route.startswith("api/"):
                    continue
                expected = _expected(allowed, role, anonymous)
                if route in STREAMS and not anonymous:
                    continue
                call = getattr(http, method.lower())
                response = call(url, _bodies(objects), format="json" if "api/" in url else None)
                got = "allowed" if route == LOGOUT else _outcome(response)
                if got != expected:
                    wrong.append(f"{method} {url} via {surface}: {got} ({response.status_code})")
                if got == "refused" and not anonymous and allowed != CLIENT:
                    assert response.status_code == 403, (method, url, surface, response.status_code)
                if got == "refused" and anonymous and route.startswith("api/v1/"):
                    assert response.status_code == 401, (method, url, response.status_code)
                    assert response["Content-Type"] == "application/problem+json"
    assert not wrong, f"{actor}: " + "; ".join(wrong)


@pytest.mark.parametrize("actor", [*ACTORS, "anonymous"], ids=str)
def test_admin_site_is_for_staff_accounts_only(actor, make_user, client):
    if actor != "anonymous":
        client.force_login(make_user(actor))
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_site_opens_for_a_staff_administrator(make_user, client):
    client.force_login(make_user(Role.ADMINISTRATOR, is_staff=True, is_superuser=True))
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("actor", ACTORS, ids=str)
def test_send_action_is_shown_only_to_senders(make_user, client, client_obj, actor):
    client.force_login(make_user(actor))
    listing = client.get("/clients/").content.decode()
    drawer = client.get(f"/clients/{client_obj.id}/", HTTP_HX_REQUEST="true").content.decode()
    assert ("Send a message" in listing) == (actor in SENDERS)
    assert ("Send a message" in drawer) == (actor in SENDERS)
