"""The portal API: sessions, the inbox, read receipts, replies, isolation between clients, and
hostile input (all answered with problem+json)."""

import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from clientdesk.accounts.models import ApiToken, User
from clientdesk.audit.models import ActivityEvent, AuditEntry
from clientdesk.clients.models import Client
from clientdesk.core.models import LiveEvent
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from clientdesk.portal.models import PortalSession
from tests.portal.conftest import reply

pytestmark = pytest.mark.django_db


def send(agent: User, client: Client, body: str = "Hello") -> Message:
    result = message_send(
        sender=agent,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    return Message.objects.get(pk=result.message_id)


def is_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


# --- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["Integration", "Administrator"])
def test_integration_and_administrators_issue_sessions(
    role: str, make_user, api_for, client_obj: Client
) -> None:
    api = api_for(make_user(role))
    by_id = api.post("/api/v1/portal/sessions", {"client_id": str(client_obj.id)}, format="json")
    assert by_id.status_code == 201
    assert by_id.json()["client_id"] == str(client_obj.id)
    assert by_id.json()["token"].startswith("cdp_")
    by_external = api.post(
        "/api/v1/portal/sessions", {"external_id": client_obj.external_id}, format="json"
    )
    assert by_external.status_code == 201
    assert by_external.json()["client_id"] == str(client_obj.id)


@pytest.mark.parametrize("role", ["Agent", "Viewer", "Manager", None])
def test_other_roles_cannot_issue_sessions(role, make_user, api_for, client_obj) -> None:
    api = api_for(make_user(role))
    response = api.post("/api/v1/portal/sessions", {"client_id": str(client_obj.id)}, format="json")
    assert is_problem(response, 403)["detail"].startswith("You need the 'Issue client portal")


def test_issuing_for_unknown_or_ambiguous_clients(integration_api, client_obj) -> None:
    missing = integration_api.post(
        "/api/v1/portal/sessions", {"client_id": str(uuid.uuid4())}, format="json"
    )
    is_problem(missing, 404)
    both = integration_api.post(
        "/api/v1/portal/sessions",
        {"client_id": str(client_obj.id), "external_id": client_obj.external_id},
        format="json",
    )
    assert "client_id" in is_problem(both, 422)["errors"]
    garbage = integration_api.post("/api/v1/portal/sessions", {"client_id": "x"}, format="json")
    assert "client_id" in is_problem(garbage, 422)["errors"]


def test_a_session_expires(portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    assert portal.get("/portal/api/v1/messages").status_code == 200
    PortalSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    is_problem(portal.get("/portal/api/v1/messages"), 401)


def test_revoking_the_minting_token_or_deactivating_its_user_ends_sessions(
    portal_for, integration: User, client_obj
) -> None:
    portal = portal_for(client_obj)
    ApiToken.objects.filter(user=integration).update(revoked_at=timezone.now())
    is_problem(portal.get("/portal/api/v1/messages"), 401)

    ApiToken.objects.filter(user=integration).update(revoked_at=None)
    assert portal.get("/portal/api/v1/messages").status_code == 200
    User.objects.filter(pk=integration.pk).update(is_active=False)
    is_problem(portal.get("/portal/api/v1/messages"), 401)


def test_tokens_never_cross_doors(portal_for, integration_api, client_obj) -> None:
    portal = portal_for(client_obj)
    staff_side = APIClient()
    staff_side.credentials(HTTP_AUTHORIZATION=f"Bearer {portal.token}")
    is_problem(staff_side.get(f"/api/v1/clients/{client_obj.id}/messages"), 401)
    is_problem(staff_side.get("/api/v1/events"), 401)
    is_problem(integration_api.get("/portal/api/v1/messages"), 401)
    is_problem(integration_api.get("/portal/api/v1/events"), 401)


@pytest.mark.parametrize(
    "token",
    ["", "cdp_", "cdp_x:y:z", "cdp_" + "A" * 500, "Bearer", "cd_abc", "cdp_\u0000", "cdp_\ud800"],
)
def test_forged_tokens_are_refused(token: str) -> None:
    api = APIClient()
    header = f"Bearer {token}".encode("utf-8", "surrogatepass").decode("latin-1")
    api.credentials(HTTP_AUTHORIZATION=header)
    is_problem(api.get("/portal/api/v1/messages"), 401)


def test_a_token_signed_for_another_client_is_refused(portal_for, make_client) -> None:
    first, second = make_client(), make_client()
    token = portal_for(first).token
    PortalSession.objects.filter(client=first).update(client=second)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    is_problem(api.get("/portal/api/v1/messages"), 401)


# --- the inbox ------------------------------------------------------------------------------


def test_the_inbox_newest_first_with_unread_count_and_cursor(portal_for, agent, client_obj) -> None:
    sent = [send(agent, client_obj, f"m{i}") for i in range(5)]
    portal = portal_for(client_obj)
    first = portal.get("/portal/api/v1/messages?limit=2").json()
    assert [m["body"] for m in first["items"]] == ["m4", "m3"]
    assert first["unread_count"] == 5
    assert first["last_event_id"] == LiveEvent.objects.order_by("-id").first().id
    item = first["items"][0]
    assert set(item) == {
        "id",
        "direction",
        "body",
        "created_at",
        "sender",
        "read_at",
        "in_reply_to",
        "attachments",
        "document_requests",
    }
    assert item["sender"] == {"name": agent.display_name}
    second = portal.get(f"/portal/api/v1/messages?limit=2&before={first['next']}").json()
    assert [m["body"] for m in second["items"]] == ["m2", "m1"]
    third = portal.get(f"/portal/api/v1/messages?limit=2&before={second['next']}").json()
    assert [m["body"] for m in third["items"]] == ["m0"]
    assert third["next"] is None
    assert len(sent) == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("before=not-a-cursor", "before"),
        ("before=" + "A" * 300, "before"),
        ("before=%00", "before"),
        ("before=MjAyNi0xMS0zMFQxMDowMDowMHw", "before"),  # a date without an id
    ],
)
def test_bad_list_parameters_are_problems(portal_for, client_obj, query, field) -> None:
    response = portal_for(client_obj).get(f"/portal/api/v1/messages?{query}")
    body = is_problem(response, 422)
    assert field in body["errors"]


# --- read receipts -------------------------------------------------------------------------


def test_reading_is_idempotent_and_keeps_the_first_time(portal_for, agent, client_obj) -> None:
    message = send(agent, client_obj)
    portal = portal_for(client_obj)
    first = portal.post(f"/portal/api/v1/messages/{message.id}/read")
    assert first.status_code == 200
    read_at = first.json()["read_at"]
    assert read_at is not None
    again = portal.post(f"/portal/api/v1/messages/{message.id}/read")
    assert again.json()["read_at"] == read_at
    assert portal.get("/portal/api/v1/messages").json()["unread_count"] == 0
    assert ActivityEvent.objects.filter(type="message.read").count() == 1
    assert LiveEvent.objects.filter(type="message.read").count() == 1
    entry = AuditEntry.objects.get(action="message.read")
    assert entry.actor_type == "client"
    assert entry.actor_id == str(client_obj.id)


def test_only_messages_from_the_business_are_marked_read(portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    mine = reply(portal, "my reply").json()
    response = portal.post(f"/portal/api/v1/messages/{mine['id']}/read")
    assert "id" in is_problem(response, 422)["errors"]


@pytest.mark.parametrize("bad_id", ["nope", "0", "a" * 300, "5b7e3f0c-2a41-4c8e-b6d9-0e1f2a3b4c5d"])
def test_reading_an_unknown_id_is_not_found(portal_for, client_obj, bad_id) -> None:
    is_problem(portal_for(client_obj).post(f"/portal/api/v1/messages/{bad_id}/read"), 404)


def test_a_nul_in_the_path_is_refused_naming_the_path(portal_for, client_obj) -> None:
    # Text with NUL is refused at the boundary, before any lookup.
    response = portal_for(client_obj).post("/portal/api/v1/messages/%00/read")
    assert "path" in is_problem(response, 422)["errors"]


# --- replies ----------------------------------------------------------------------------------


def test_a_reply_is_plain_text_on_the_timeline_ledger_and_stream(
    portal_for, agent, client_obj
) -> None:
    original = send(agent, client_obj, "How can we help?")
    portal = portal_for(client_obj)
    text = "<script>alert(1)</script> {{ client.first_name }} {% raw %}"
    response = reply(portal, text, in_reply_to=str(original.id))
    assert response.status_code == 201
    body = response.json()
    assert body["body"] == text  # never rendered as a template
    assert body["direction"] == "in"
    assert body["in_reply_to"] == str(original.id)
    assert body["sender"] is None
    stored = Message.objects.get(pk=body["id"])
    assert stored.direction == "in" and stored.in_reply_to_id == original.id
    assert ActivityEvent.objects.get(type="message.received").actor_type == "client"
    assert AuditEntry.objects.get(action="message.received").actor_id == str(client_obj.id)
    event = LiveEvent.objects.filter(type="message.created").order_by("-id").first()
    assert event is not None and event.data["id"] == body["id"]
    staff = APIClient()
    staff.force_authenticate(agent)
    listed = staff.get(f"/api/v1/clients/{client_obj.id}/messages").json()["results"]
    assert listed[0]["direction"] == "in"
    assert listed[0]["in_reply_to"] == str(original.id)
    detail = staff.get(f"/api/v1/messages/{body['id']}").json()
    assert detail["direction"] == "in" and detail["read_at"] is None


def test_a_reply_retried_with_its_key_is_written_once(portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    first = reply(portal, "once", key="same")
    again = reply(portal, "once", key="same")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Message.objects.filter(direction="in").count() == 1
    other = reply(portal, "another text", key="same")
    assert "Idempotency-Key" in is_problem(other, 422)["errors"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": ""}, "body"),
        ({"body": "   \n"}, "body"),
        ({"body": "x" * 5001}, "body"),
        ({"body": "nul \u0000 inside"}, "body"),
        ({"body": "lone \ud800 surrogate"}, "body"),
        ({"body": None}, "body"),
        ({"body": ["list"]}, "body"),
        ({"body": {"nested": {"deeply": ["x"]}}}, "body"),
        ({}, "body"),
        ({"body": "ok", "in_reply_to": "not-a-uuid"}, "in_reply_to"),
        ({"body": "ok", "in_reply_to": str(uuid.uuid4())}, "in_reply_to"),
    ],
)
def test_bad_replies_are_problems_naming_the_field(portal_for, client_obj, payload, field) -> None:
    portal = portal_for(client_obj)
    raw = json.dumps(payload)  # lone surrogates travel as \ud800 escapes, as a client would send
    response = portal.post(
        "/portal/api/v1/messages",
        raw,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert field in is_problem(response, 422)["errors"]
    assert not Message.objects.filter(direction="in").exists()


@pytest.mark.parametrize("key", ["", "with space", "ü", "x" * 256, "\u0000"])
def test_a_reply_needs_a_sane_idempotency_key(portal_for, client_obj, key) -> None:
    response = reply(portal_for(client_obj), "hello", key=key)
    assert "Idempotency-Key" in is_problem(response, 422)["errors"]


def test_a_huge_request_is_refused_without_writing(portal_for, client_obj) -> None:
    response = reply(portal_for(client_obj), "x" * 3_000_000)
    assert response.status_code in (400, 413, 422)
    assert response["Content-Type"] == "application/problem+json"
    assert not Message.objects.filter(direction="in").exists()


def test_replies_are_rate_limited_per_client(portal_for, make_client, settings) -> None:
    settings.PORTAL_REPLIES_PER_MINUTE = 3
    first, second = make_client(), make_client()
    portal = portal_for(first)
    for i in range(3):
        assert reply(portal, f"r{i}", key=f"k{i}").status_code == 201
    limited = reply(portal, "one too many", key="k9")
    is_problem(limited, 429)
    assert 1 <= int(limited["Retry-After"]) <= 61
    assert reply(portal_for(second), "another client is not limited").status_code == 201


# --- isolation ------------------------------------------------------------------------------


def test_a_client_sees_and_touches_only_their_own_messages(portal_for, agent, make_client) -> None:
    alice, bob = make_client(), make_client()
    to_alice = send(agent, alice, "for Alice")
    to_bob = send(agent, bob, "for Bob")
    alice_portal = portal_for(alice)
    listed = alice_portal.get("/portal/api/v1/messages").json()
    assert [m["body"] for m in listed["items"]] == ["for Alice"]
    is_problem(alice_portal.post(f"/portal/api/v1/messages/{to_bob.id}/read"), 404)
    Message.objects.get(pk=to_bob.id).read_at is None  # noqa: B015
    foreign = reply(alice_portal, "reply to Bob's", in_reply_to=str(to_bob.id))
    assert "in_reply_to" in is_problem(foreign, 422)["errors"]
    assert to_alice.client_id == alice.id


# --- webhooks ---------------------------------------------------------------------------------


def test_read_and_reply_queue_signed_webhooks_when_the_endpoint_is_on(
    portal_for, agent, client_obj, endpoint_on
) -> None:
    message = send(agent, client_obj)
    portal = portal_for(client_obj)
    portal.post(f"/portal/api/v1/messages/{message.id}/read")
    reply(portal, "thanks")
    payloads = {d.payload["type"]: d for d in Delivery.objects.filter(channel="webhook")}
    assert set(payloads) == {"message.sent", "message.read", "message.received"}
    read = payloads["message.read"]
    assert read.subject_id != message.id  # not shown as the message's own delivery
    assert read.payload["data"]["message"]["id"] == str(message.id)
    assert read.payload["data"]["message"]["read_at"] is not None
    received = payloads["message.received"].payload["data"]
    assert received["message"]["direction"] == "in"
    assert received["message"]["body"] == "thanks"
    assert received["client"] == {"id": str(client_obj.id), "external_id": client_obj.external_id}


@pytest.fixture
def endpoint_on(make_user, settings) -> None:
    from clientdesk.delivery.services.endpoints import endpoint_configure

    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    endpoint_configure(user=make_user("Administrator"), url="http://127.0.0.1:9/hook", enabled=True)


# --- properties ---------------------------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.text(max_size=300))
def test_any_text_is_either_stored_exactly_or_refused_with_a_problem(
    body: str, portal_for: Callable[[Client], APIClient], client_obj: Client
) -> None:
    portal = portal_for(client_obj)
    with override_settings(PORTAL_REPLIES_PER_MINUTE=10_000):
        response = portal.post(
            "/portal/api/v1/messages",
            json.dumps({"body": body}),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
    if response.status_code == 201:
        assert Message.objects.get(pk=response.json()["id"]).body == body
    else:
        assert "body" in is_problem(response, 422)["errors"]


def test_a_portal_reply_answers_the_awaiting_message(portal_for, agent, client_obj) -> None:
    result = message_send(
        sender=agent,
        client_id=client_obj.id,
        body="Please confirm your address",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        expects_reply=True,
    )
    assert Message.objects.get(pk=result.message_id).reply_state == "awaiting"
    assert reply(portal_for(client_obj), "Confirmed").status_code == 201
    answered = Message.objects.get(pk=result.message_id)
    assert answered.reply_state == "answered"
    assert answered.answered_at is not None
