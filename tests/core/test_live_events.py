"""Live events end to end: rows written with the change, streams served by a real uvicorn on
loopback, resumption by Last-Event-ID, two web processes, and nothing left after disconnects."""

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection, transaction

from clientdesk.accounts.models import User
from clientdesk.accounts.services import api_token_create
from clientdesk.clients.models import Client
from clientdesk.core.live import stream as stream_body
from clientdesk.core.live.recording import live_event_record
from clientdesk.core.models import LiveEvent
from tests.sending import send_text
from tests.servers import InProcessServer, SSEReader, uvicorn_process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[InProcessServer]:
    s = InProcessServer()
    yield s
    s.stop()


@pytest.fixture
def staff_token(agent: User) -> str:
    return api_token_create(user=agent)[1]


def send(agent: User, client: Client, body: str) -> uuid.UUID:
    return send_text(agent, client, body).message_id


def stream(url: str, token: str, **headers: str) -> SSEReader:
    return SSEReader(
        f"{url}/api/v1/events", headers={"Authorization": f"Bearer {token}", **headers}
    )


def test_an_event_needs_the_transaction_of_its_change(client_obj: Client) -> None:
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        live_event_record(client_id=client_obj.id, type="message.created", data={})
    with transaction.atomic():
        event = live_event_record(client_id=client_obj.id, type="x.test", data={"a": 1})
    assert LiveEvent.objects.get(pk=event.pk).data == {"a": 1}


def test_a_rolled_back_change_leaves_no_event(client_obj: Client) -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        live_event_record(client_id=client_obj.id, type="x.test", data={})
        1 / 0  # noqa: B018
    assert not LiveEvent.objects.exists()


def test_the_staff_stream_sends_the_event_of_a_commit(
    server: InProcessServer, staff_token: str, agent: User, client_obj: Client
) -> None:
    reader = stream(server.url, staff_token)
    assert reader.status == 200
    assert reader.response_headers["content-type"].startswith("text/event-stream")
    assert reader.response_headers["cache-control"] == "no-cache"
    assert reader.response_headers["x-accel-buffering"] == "no"
    deadline = time.monotonic() + 30
    while "retry: 3000" not in reader.raw and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "retry: 3000" in reader.raw
    _wait_subscribed(server, 1)

    message_id = send(agent, client_obj, "Hello <b>there</b>")
    event = reader.next()
    assert event.event == "message.created"
    assert event.id is not None and event.id.isdigit()
    assert event.json["client_id"] == str(client_obj.id)
    assert event.json["id"] == str(message_id)
    assert event.json["body"] == "Hello <b>there</b>"
    reader.close()


def test_resuming_after_three_missed_events_sends_exactly_those_three(
    server: InProcessServer, staff_token: str, agent: User, client_obj: Client
) -> None:
    first = stream(server.url, staff_token)
    _wait_subscribed(server, 1)
    send(agent, client_obj, "seen")
    seen = first.next()
    first.close()

    missed = [send(agent, client_obj, f"missed {i}") for i in range(3)]

    for headers, url_suffix in (
        ({"Last-Event-ID": seen.id or ""}, ""),
        ({}, f"?last_event_id={seen.id}"),
    ):
        again = SSEReader(
            f"{server.url}/api/v1/events{url_suffix}",
            headers={"Authorization": f"Bearer {staff_token}", **headers},
        )
        got = [again.next() for _ in range(3)]
        assert [e.json["id"] for e in got] == [str(m) for m in missed]
        assert [int(e.id or 0) for e in got] == sorted(int(e.id or 0) for e in got)
        assert again.nothing_more(0.5)
        again.close()


def test_the_header_cursor_wins_over_the_url_one(
    server: InProcessServer, staff_token: str, agent: User, client_obj: Client
) -> None:
    ids = [send(agent, client_obj, f"m{i}") for i in range(2)]
    events = list(LiveEvent.objects.order_by("id"))
    reader = SSEReader(
        f"{server.url}/api/v1/events?last_event_id={events[0].id}",
        headers={"Authorization": f"Bearer {staff_token}", "Last-Event-ID": str(events[1].id)},
    )
    assert reader.nothing_more(0.5), "the header said both were seen"
    reader.close()
    assert len(ids) == 2


def test_an_unknown_cursor_gets_a_reset_event(
    server: InProcessServer, staff_token: str, agent: User, client_obj: Client
) -> None:
    send(agent, client_obj, "one")
    reader = stream(server.url, staff_token, **{"Last-Event-ID": "987654321"})
    event = reader.next()
    assert event.event == "stream.reset"
    assert event.json == {"reason": "cursor_expired"}
    assert event.id == str(LiveEvent.objects.order_by("-id").first().id)  # type: ignore[union-attr]
    send(agent, client_obj, "two")
    assert reader.next().json["body"] == "two"
    reader.close()


@pytest.mark.parametrize(
    "cursor", ["abc", "-1", "1.5", "١٢", "9" * 30, "1 2", str(2**63), "9" * 20, "9" * 5000]
)
def test_a_malformed_cursor_is_a_problem(
    server: InProcessServer, staff_token: str, cursor: str
) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/events",
        params={"last_event_id": cursor},
        headers={"Authorization": f"Bearer {staff_token}"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "Last-Event-ID" in response.json()["errors"]


def test_the_staff_stream_needs_a_staff_identity_with_view_permission(
    server: InProcessServer, make_user: Callable[..., User]
) -> None:
    anonymous = httpx.get(f"{server.url}/api/v1/events")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    bad = httpx.get(f"{server.url}/api/v1/events", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    malformed = httpx.get(f"{server.url}/api/v1/events", headers={"Authorization": "Basic x"})
    assert malformed.status_code == 401
    nobody = api_token_create(user=make_user(None))[1]
    forbidden = httpx.get(
        f"{server.url}/api/v1/events", headers={"Authorization": f"Bearer {nobody}"}
    )
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"


def test_heartbeats_and_a_revoked_token_closes_the_stream(
    server: InProcessServer, agent: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_body, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(stream_body, "REVALIDATE_SECONDS", 0.5)
    row, token = api_token_create(user=agent)
    reader = stream(server.url, token)
    time.sleep(0.7)
    assert sum(c == ": keep-alive" for c in reader.comments) >= 2
    row.revoked_at = row.created_at
    row.save()
    event = reader.next()
    assert event.event == "stream.closed"
    assert event.json == {"reason": "token_revoked"}
    assert reader.ended.wait(30)


def test_a_send_handled_by_one_web_process_reaches_a_stream_on_another(
    server: InProcessServer, staff_token: str, client_obj: Client
) -> None:
    with uvicorn_process() as other:
        assert _latency_to_another_process(server, other, staff_token, client_obj) < 3.0


def _latency_to_another_process(
    server: InProcessServer, other: str, staff_token: str, client: Client
) -> float:
    """Seconds from a send's commit on `server` to its event on a stream held by `other`."""
    reader = stream(other, staff_token)
    # The other process has subscribed once its first id line is out.
    deadline = time.monotonic() + 10
    while not any(line.startswith("id: ") for line in reader.raw):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    body = f"across processes {uuid.uuid4()}"
    response = httpx.post(
        f"{server.url}/api/v1/clients/{client.id}/messages",
        json={"body": body},
        headers={"Authorization": f"Bearer {staff_token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    committed = time.monotonic()
    event = reader.next()
    reader.close()
    assert event.json["body"] == body
    return event.received - committed


REDIS_URL = "redis://127.0.0.1:6379/0"


def test_with_redis_a_send_reaches_a_stream_on_another_process_at_once(
    server: InProcessServer, staff_token: str, client_obj: Client, settings: Any
) -> None:
    """REDIS_URL set: the announcement goes through Redis pub/sub, not the database's
    NOTIFY or the datagram, and arrives well before the 5 s safety poll would find the row."""
    import redis

    redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()  # CI runs Redis on loopback
    settings.REDIS_URL = REDIS_URL
    with uvicorn_process(REDIS_URL=REDIS_URL) as other:
        latency = _latency_to_another_process(server, other, staff_token, client_obj)
        assert latency < 3.0, "found by the safety poll, not announced"


def _wait_subscribed(server: InProcessServer, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        current = server.subscribers()
        if current == count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{current} subscribers, expected {count}")
        time.sleep(0.05)


def _database_connections() -> int:
    """Connections this process (the server's) has open to the test database."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            return int(cursor.fetchone()[0])
    name = str(Path(connection.settings_dict["NAME"]).resolve())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == name:
                count += 1
        except OSError:
            continue
    return count


def test_a_hundred_streams_then_disconnected_leave_nothing_behind(
    server: InProcessServer, staff_token: str, agent: User, client_obj: Client, settings: Any
) -> None:
    settings.STAFF_STREAMS_PER_USER = 100  # one user's hundred streams, above the usual cap
    warm = stream(server.url, staff_token)
    _wait_subscribed(server, 1)
    warm.close()
    _wait_subscribed(server, 0)
    assert server.loop is not None
    loop = server.loop
    tasks_before = server.call(lambda: len(asyncio.all_tasks(loop)))
    connection.close()
    connections_before = _database_connections()

    readers = [stream(server.url, staff_token) for _ in range(100)]
    _wait_subscribed(server, 100)
    send(agent, client_obj, "to all hundred")
    for reader in readers:
        assert reader.next().json["body"] == "to all hundred"
    for reader in readers:
        reader.close()

    _wait_subscribed(server, 0)
    deadline = time.monotonic() + 10
    while server.call(lambda: len(asyncio.all_tasks(loop))) > tasks_before:
        assert time.monotonic() < deadline, "stream tasks left running after disconnect"
        time.sleep(0.05)
    connection.close()
    if connection.vendor == "postgresql":
        # Idle connections may stay pooled for reuse; none may be checked out by a stream.
        stats = connection.pool.get_stats()  # type: ignore[attr-defined]
        assert stats["pool_size"] - stats["pool_available"] == 0
        pool_max = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
        assert _database_connections() <= 1 + pool_max  # the listener and the pool
    else:
        assert _database_connections() <= connections_before


def test_pruning_keeps_the_newest_event_and_old_cursors_get_a_reset(
    server: InProcessServer, staff_token: str, agent: User, client_obj: Client
) -> None:
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    for i in range(3):
        send(agent, client_obj, f"old {i}")
    oldest = LiveEvent.objects.order_by("id").first()
    assert oldest is not None
    LiveEvent.objects.update(created_at=timezone.now() - timedelta(days=30))
    call_command("prune_live_events")
    assert list(LiveEvent.objects.values_list("data__body", flat=True)) == ["old 2"]
    reader = stream(server.url, staff_token, **{"Last-Event-ID": str(oldest.id)})
    assert reader.next().event == "stream.reset"
    reader.close()
