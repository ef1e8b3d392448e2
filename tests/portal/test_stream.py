"""The client's event stream under a real uvicorn: only that client's events, resumable, and
closed with `stream.closed` when the session ends."""

import time
from collections.abc import Iterator

import httpx
import pytest
from django.utils import timezone

from clientdesk.core.live import stream
from clientdesk.portal.models import PortalSession
from tests.portal.conftest import reply
from tests.sending import send_text
from tests.servers import InProcessServer, SSEReader

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[InProcessServer]:
    s = InProcessServer()
    yield s
    s.stop()


def send(agent, client, body):
    return send_text(agent, client, body).message_id


def wait_subscribed(server: InProcessServer, count: int) -> None:
    deadline = time.monotonic() + 20
    while server.subscribers() != count:
        assert time.monotonic() < deadline, f"{server.subscribers()} subscribers, not {count}"
        time.sleep(0.02)


def test_each_client_gets_only_their_own_events_live(
    server, portal_for, agent, make_client
) -> None:
    alice, bob = make_client(), make_client()
    alice_portal, bob_portal = portal_for(alice), portal_for(bob)
    # The token in the query string, as EventSource must send it.
    alice_stream = SSEReader(f"{server.url}/portal/api/v1/events?token={alice_portal.token}")
    bob_stream = SSEReader(
        f"{server.url}/portal/api/v1/events",
        headers={"Authorization": f"Bearer {bob_portal.token}"},
    )
    wait_subscribed(server, 2)
    message_id = send(agent, alice, "for Alice only")
    committed = time.monotonic()
    created = alice_stream.next()
    assert created.event == "message.created"
    assert created.received - committed < 1.0
    assert created.json["id"] == str(message_id)
    assert set(created.json) == {
        "id", "direction", "body", "created_at", "sender", "read_at", "in_reply_to",
        "attachments", "document_requests",
    }  # fmt: skip
    assert created.json["attachments"] == [] and created.json["document_requests"] == []
    alice_portal.post(f"/portal/api/v1/messages/{message_id}/read")
    read = alice_stream.next()
    assert read.event == "message.read"
    assert read.json["id"] == str(message_id) and read.json["read_at"]
    reply(alice_portal, "<b>my reply</b>")
    mine = alice_stream.next()
    assert mine.json["direction"] == "in" and mine.json["body"] == "<b>my reply</b>"
    assert bob_stream.nothing_more(0.5)
    alice_stream.close()
    bob_stream.close()


def test_resuming_sends_exactly_the_missed_events(server, portal_for, agent, client_obj) -> None:
    portal = portal_for(client_obj)
    url = f"{server.url}/portal/api/v1/events?token={portal.token}"
    first = SSEReader(url)
    wait_subscribed(server, 1)
    send(agent, client_obj, "seen")
    seen = first.next()
    first.close()
    wait_subscribed(server, 0)
    missed = [str(send(agent, client_obj, f"missed {i}")) for i in range(3)]
    again = SSEReader(url, headers={"Last-Event-ID": seen.id or ""})
    assert [again.next().json["id"] for _ in range(3)] == missed
    assert again.nothing_more(0.5)
    again.close()


def test_the_stream_starts_where_the_inbox_listing_left_off(
    server, portal_for, agent, client_obj
) -> None:
    portal = portal_for(client_obj)
    listing = portal.get("/portal/api/v1/messages").json()
    between = send(agent, client_obj, "sent between the list and the stream")
    reader = SSEReader(
        f"{server.url}/portal/api/v1/events?token={portal.token}"
        f"&last_event_id={listing['last_event_id']}"
    )
    assert reader.next().json["id"] == str(between)
    reader.close()


def test_an_ended_session_closes_the_stream_with_an_event(
    server, portal_for, client_obj, monkeypatch
) -> None:
    monkeypatch.setattr(stream, "REVALIDATE_SECONDS", 0.3)
    monkeypatch.setattr(stream, "HEARTBEAT_SECONDS", 0.2)
    portal = portal_for(client_obj)
    reader = SSEReader(f"{server.url}/portal/api/v1/events?token={portal.token}")
    wait_subscribed(server, 1)
    PortalSession.objects.update(revoked_at=timezone.now())
    closed = reader.next()
    assert closed.event == "stream.closed"
    assert closed.json == {"reason": "session_revoked"}
    assert reader.ended.wait(30)
    wait_subscribed(server, 0)


def test_an_expiring_session_closes_at_its_expiry(server, portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    PortalSession.objects.update(expires_at=timezone.now() + timezone.timedelta(seconds=1))
    reader = SSEReader(f"{server.url}/portal/api/v1/events?token={portal.token}")
    closed = reader.next()
    assert closed.event == "stream.closed"
    assert closed.json == {"reason": "session_expired"}


@pytest.mark.parametrize("token", ["", "nope", "cdp_forged:x:y"])
def test_a_bad_token_is_a_problem_not_a_stream(server, token) -> None:
    response = httpx.get(f"{server.url}/portal/api/v1/events", params={"token": token})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("cursor", ["x", "-5", "1e3", "9" * 25, str(2**63), "٣"])
def test_a_wrong_cursor_is_a_problem(server, portal_for, client_obj, cursor) -> None:
    portal = portal_for(client_obj)
    response = httpx.get(
        f"{server.url}/portal/api/v1/events",
        params={"token": portal.token, "last_event_id": cursor},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
