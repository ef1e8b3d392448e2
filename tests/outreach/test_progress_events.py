"""`broadcast.progress` on the staff event stream (a real server): one event per batch, to the
broadcast's creator and to users with *Send a broadcast*, never to other staff."""

from collections.abc import Callable, Iterator

import pytest

from clientdesk.accounts.models import User
from clientdesk.accounts.services import api_token_create
from clientdesk.clients.models import Client
from clientdesk.core.request_meta import RequestMeta
from clientdesk.outreach.services import (
    broadcast_create,
    broadcast_request_parse,
    broadcasts_send_batch,
)
from tests.servers import InProcessServer, SSEReader

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[InProcessServer]:
    s = InProcessServer()
    yield s
    s.stop()


def reader(server: InProcessServer, user: User) -> SSEReader:
    token = api_token_create(user=user)[1]
    return SSEReader(f"{server.url}/api/v1/events", headers={"Authorization": f"Bearer {token}"})


def test_progress_reaches_broadcasters_once_per_batch_and_no_one_else(
    server: InProcessServer, make_user: Callable[..., User], make_client: Callable[..., Client]
) -> None:
    creator, other_manager, agent = make_user("Manager"), make_user("Manager"), make_user("Agent")
    clients = [make_client() for _ in range(5)]
    streams = {
        name: reader(server, u)
        for name, u in (("creator", creator), ("manager", other_manager), ("agent", agent))
    }
    for stream in streams.values():
        assert stream.opened.wait(30)
    request = broadcast_request_parse(
        {
            "audience": {"client_ids": [str(c.pk) for c in clients]},
            "body": "Hello {{ firstName }}",
            "category": "service",
        }
    )
    broadcast, _ = broadcast_create(
        actor=creator, request=request, idempotency_key="p-1", meta=RequestMeta()
    )
    while broadcasts_send_batch(limit=2):
        pass
    for name in ("creator", "manager"):
        progress = []
        while len(progress) < 4:  # created, then batches of 2, 2 and 1
            event = streams[name].next(30)
            if event.event == "broadcast.progress":
                progress.append(event.json)
        assert [p["sent"] for p in progress] == [0, 2, 4, 5], name
        assert progress[-1] == {
            "broadcast_id": str(broadcast.pk),
            "status": "completed",
            "created_by": str(creator.pk),
            "recipients": 5,
            "sent": 5,
            "skipped": 0,
            "cancelled": 0,
            "pending": 0,
        }
        assert "client_id" not in progress[-1]
    # The agent sees the five messages (clients it may view), never the broadcast's progress.
    seen = [streams["agent"].next(30) for _ in range(5)]
    assert {e.event for e in seen} == {"message.created"}
    assert streams["agent"].nothing_more(1.0)
    for stream in streams.values():
        stream.close()
