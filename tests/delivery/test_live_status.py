"""A delivery status written by a worker process reaches a staff event stream held by the web
process (SQLite: the datagram wake-up; PostgreSQL: NOTIFY)."""

import time
from collections.abc import Iterator

import pytest

from clientdesk.accounts.services import api_token_create
from tests.delivery.test_worker_processes import send_many, start_worker, stop
from tests.servers import InProcessServer, SSEReader

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[InProcessServer]:
    s = InProcessServer()
    yield s
    s.stop()


def test_a_worker_made_delivery_status_reaches_the_staff_stream(
    server, endpoint, receiver, agent, client_obj
):
    token = api_token_create(user=agent)[1]
    reader = SSEReader(f"{server.url}/api/v1/events", headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 10
    while server.subscribers() < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    send_many(agent, client_obj, 1)
    created = reader.next()
    assert created.event == "message.created"
    worker = start_worker()
    try:
        receiver.wait_for(1)
        delivered_at_receiver = time.monotonic()
        updated = reader.next()
    finally:
        stop(worker)
    reader.close()
    assert updated.event == "delivery.updated"
    assert updated.json["client_id"] == str(client_obj.id)
    assert updated.json["subject_id"] == created.json["id"]
    assert updated.json["channel"] == "webhook"
    assert updated.json["status"] == "delivered"
    assert updated.received - delivered_at_receiver < 2.0
