"""Streams no one can flood, and streams that end with their session: at most 5 open streams per
client (all its sessions together, across server processes) and 10 per staff user, one more is
429 problem+json with Retry-After while everything else is answered; leases of a dead process
lapse; sign-out and deactivation close open streams within 5 s; a refreshed session keeps its
stream. Real servers on loopback."""

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from clientdesk.accounts.services import api_token_create
from clientdesk.core.live.leases import LEASE_SECONDS
from clientdesk.portal.models import PortalSession, StreamLease
from tests.sending import send_text
from tests.servers import InProcessServer, SSEReader, procfile_process, uvicorn_process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[InProcessServer]:
    s = InProcessServer()
    yield s
    s.stop()


def portal_stream(url: str, token: str) -> SSEReader:
    return SSEReader(f"{url}/portal/api/v1/events?token={token}")


def staff_stream(url: str, token: str) -> SSEReader:
    return SSEReader(f"{url}/api/v1/events", headers={"Authorization": f"Bearer {token}"})


def until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def assert_refused(reader: SSEReader) -> None:
    assert reader.ended.wait(30)
    assert reader.status == 429, (reader.status, reader.body)
    assert reader.response_headers["content-type"] == "application/problem+json"
    assert 1 <= int(reader.response_headers["retry-after"]) <= 60
    problem = json.loads(reader.body)
    assert problem["status"] == 429 and "open event streams" in problem["detail"]


def close_all(readers: list[SSEReader]) -> None:
    for reader in readers:
        reader.close()


def test_a_client_holds_five_streams_across_its_sessions(
    server, portal_for, make_client, agent
) -> None:
    alice, bob = make_client(), make_client()
    first, second = portal_for(alice), portal_for(alice)
    open_ = [portal_stream(server.url, (first if i % 2 else second).token) for i in range(5)]
    try:
        assert all(r.status == 200 for r in open_)
        sixth = portal_stream(server.url, first.token)
        assert_refused(sixth)
        # Everything else is answered meanwhile: the API, health, another client's stream.
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert first.get("/portal/api/v1/messages").status_code == 200
        bobs = portal_stream(server.url, portal_for(bob).token)
        assert bobs.status == 200
        message_id = send_text(agent, bob, "for Bob").message_id
        assert bobs.next().json["id"] == str(message_id)
        bobs.close()
        # A closed stream gives its place back at once.
        open_.pop().close()
        until(lambda: StreamLease.objects.filter(holder=f"client:{alice.id}").count() == 4, "4")
        again = portal_stream(server.url, second.token)
        assert again.status == 200
        open_.append(again)
    finally:
        close_all(open_)
    until(lambda: not StreamLease.objects.exists(), "every lease given back")


def test_a_staff_user_holds_ten_streams(server, agent, make_user) -> None:
    token = api_token_create(user=agent)[1]
    other = api_token_create(user=make_user("Agent"))[1]
    open_ = [staff_stream(server.url, token) for _ in range(10)]
    try:
        assert all(r.status == 200 for r in open_)
        assert_refused(staff_stream(server.url, token))
        # Another token of the same user counts against the same cap; another user does not.
        assert_refused(staff_stream(server.url, api_token_create(user=agent)[1]))
        theirs = staff_stream(server.url, other)
        assert theirs.status == 200
        theirs.close()
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        close_all(open_)


def test_the_cap_counts_streams_of_every_process(server, portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    with uvicorn_process() as other:
        here = [portal_stream(server.url, portal.token) for _ in range(3)]
        there = [portal_stream(other, portal.token) for _ in range(2)]
        try:
            assert all(r.status == 200 for r in here + there)
            assert_refused(portal_stream(server.url, portal.token))
            assert_refused(portal_stream(other, portal.token))
        finally:
            close_all(here + there)


def test_leases_of_a_process_that_died_lapse(server, portal_for, client_obj) -> None:
    """A process killed with its streams open never gives their leases back: they count until
    they lapse (LEASE_SECONDS after the last renewal), then stop counting."""
    portal = portal_for(client_obj)
    now = timezone.now()
    StreamLease.objects.bulk_create(
        StreamLease(
            holder=f"client:{client_obj.id}",
            owner="4242-dead",
            created_at=now,
            expires_at=now + timedelta(seconds=LEASE_SECONDS),
        )
        for _ in range(5)
    )
    assert_refused(portal_stream(server.url, portal.token))
    StreamLease.objects.filter(owner="4242-dead").update(expires_at=now - timedelta(seconds=1))
    reader = portal_stream(server.url, portal.token)
    assert reader.status == 200
    reader.close()
    assert not StreamLease.objects.filter(owner="4242-dead").exists()  # cleared on the way


def test_an_events_process_killed_with_its_streams_open_stops_counting_soon(
    tmp_path: Path, server, portal_for, client_obj
) -> None:
    """SIGKILL: nothing gives the leases back; they count until they lapse, then the client
    opens streams again elsewhere. (A 10-second lease here; 60 s by default.)"""
    import psutil

    portal = portal_for(client_obj)
    env = {"CLIENTDESK_STREAM_LEASE_SECONDS": "10"}
    with procfile_process("events", tmp_path / "events.log", **env) as (url, pid):
        doomed = [portal_stream(url, portal.token) for _ in range(5)]
        assert [r.status for r in doomed] == [200] * 5
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for process in family:
            process.kill()
        psutil.wait_procs(family, timeout=20)
        killed = time.monotonic()
        assert_refused(portal_stream(server.url, portal.token))  # still counted
        deadline = killed + 45
        while (again := portal_stream(server.url, portal.token)).status != 200:
            assert time.monotonic() < deadline, "the dead process's leases never lapsed"
            time.sleep(0.2)
        print(f"leases of the killed process lapsed after {time.monotonic() - killed:.1f} s")
        again.close()
        close_all(doomed)


def test_an_open_stream_renews_its_lease(server, portal_for, client_obj, monkeypatch) -> None:
    from clientdesk.core.live import leases

    monkeypatch.setattr(leases, "RENEW_SECONDS", 0.3)
    reader = portal_stream(server.url, portal_for(client_obj).token)
    try:
        first = StreamLease.objects.get().expires_at
        until(lambda: StreamLease.objects.get().expires_at > first, "renewed")
    finally:
        reader.close()


def test_deactivation_closes_open_streams_within_five_seconds(
    server, portal_for, agent, api_for, make_client
) -> None:
    alice, bob = make_client(), make_client()
    readers = [portal_stream(server.url, portal_for(alice).token) for _ in range(2)]
    bobs = portal_stream(server.url, portal_for(bob).token)
    until(lambda: server.subscribers() == 3, "subscribed")
    started = time.monotonic()
    answer = api_for(agent).patch(
        f"/api/v1/clients/{alice.id}", {"is_active": False}, format="json"
    )
    assert answer.status_code == 200
    for reader in readers:
        closed = reader.next(timeout=30)
        assert (closed.event, closed.json) == ("stream.closed", {"reason": "client_deactivated"})
        assert reader.ended.wait(30)
        took = closed.received - started
        print(f"deactivation to stream.closed: {took * 1000:.0f} ms")
        assert took < 5.0
    assert bobs.nothing_more(0.5)  # another client's stream goes on
    bobs.close()
    until(lambda: StreamLease.objects.filter(holder=f"client:{alice.id}").count() == 0, "freed")


def test_sign_out_closes_that_sessions_streams_only(server, portal_for, client_obj) -> None:
    leaving, staying = portal_for(client_obj), portal_for(client_obj)
    gone = portal_stream(server.url, leaving.token)
    kept = portal_stream(server.url, staying.token)
    until(lambda: server.subscribers() == 2, "subscribed")
    assert leaving.post("/portal/api/v1/session/end").status_code == 204
    closed = gone.next(timeout=30)
    assert (closed.event, closed.json) == ("stream.closed", {"reason": "signed_out"})
    assert kept.nothing_more(0.5)
    kept.close()


def test_a_refreshed_session_keeps_its_stream_past_the_old_end(
    server, portal_for, client_obj, agent
) -> None:
    portal = portal_for(client_obj)
    PortalSession.objects.update(expires_at=timezone.now() + timedelta(seconds=2))
    reader = portal_stream(server.url, portal.token)
    assert portal.post("/portal/api/v1/session/refresh").status_code == 200
    old_end = time.monotonic() + 2
    until(lambda: time.monotonic() > old_end + 1, "past the old end", timeout=10)
    message_id = send_text(agent, client_obj, "still here").message_id
    event = reader.next()
    assert (event.event, event.json["id"]) == ("message.created", str(message_id))
    reader.close()


def test_a_flood_from_one_client_leaves_everyone_else_served(
    tmp_path: Path, portal_for, make_client, agent
) -> None:
    """200 stream attempts at once with one client's token against the Procfile's events
    process: 5 streams, the rest 429; meanwhile /healthz answers and another client's stream
    opens and gets its event."""
    flooder, other = make_client(), make_client()
    token = portal_for(flooder).token
    with procfile_process("events", tmp_path / "events.log") as (url, _):
        statuses: list[int] = []
        holding = threading.Event()
        release = threading.Event()

        async def attempt(client: httpx.AsyncClient) -> None:
            try:
                async with client.stream(
                    "GET", f"{url}/portal/api/v1/events", params={"token": token}
                ) as response:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        if sum(s == 200 for s in statuses) >= 5:
                            holding.set()
                        while not release.is_set():
                            await asyncio.sleep(0.1)
            except httpx.HTTPError:
                statuses.append(0)

        async def flood() -> None:
            limits = httpx.Limits(max_connections=300)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                await asyncio.gather(*(attempt(client) for _ in range(200)))

        flooding = threading.Thread(target=lambda: asyncio.run(flood()), daemon=True)
        flooding.start()
        try:
            until(lambda: len(statuses) >= 200, "every attempt answered", timeout=120)
            assert holding.is_set()
            timings = []
            for _ in range(20):
                started = time.monotonic()
                assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
                timings.append(time.monotonic() - started)
            theirs = portal_stream(url, portal_for(other).token)
            assert theirs.status == 200
            message_id = send_text(agent, other, "for the other client").message_id
            assert theirs.next().json["id"] == str(message_id)
            theirs.close()
        finally:
            release.set()
            flooding.join(60)
        assert statuses.count(200) == 5, sorted(set(statuses))
        assert statuses.count(429) == 195
        print(f"/healthz during the flood: median {statistics.median(timings) * 1000:.1f} ms")
        assert statistics.median(timings) < 0.5
