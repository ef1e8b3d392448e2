"""Real worker processes against the test database: killed mid-attempt, and side by side."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery, DeliveryStatus
from clientdesk.messaging.services.sending import message_send

pytestmark = pytest.mark.django_db(transaction=True)
MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(concurrency: int = 4, *, ready: bool = False) -> subprocess.Popen[bytes]:
    """`ready`: return once the worker says it runs (Django loaded, about to claim)."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CLIENTDESK_VAR_DIR": str(settings.VAR_DIR),
        "CLIENTDESK_LEASE_SECONDS": "2",
        "CLIENTDESK_RETRY_SCALE": "0",
        "CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, str(MANAGE), "run_worker", f"--concurrency={concurrency}"],
        env=env,
        stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if ready:
        assert process.stdout is not None
        line = process.stdout.readline()  # "Delivery worker … running"; empty if it died
        assert b"running" in line, (line, process.stderr.read() if process.stderr else b"")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def messages():
    """The messages' deliveries (a worker may also send the ledger's audit.checkpoint)."""
    return Delivery.objects.filter(payload__type="message.sent")


def wait_until_delivered(count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if messages().filter(status=DeliveryStatus.DELIVERED).count() == count:
            return
        time.sleep(0.1)
    states = Counter(messages().values_list("status", flat=True))
    raise AssertionError(f"not all {count} delivered in {timeout} s: {dict(states)}")


def send_many(agent, client, n: int) -> None:
    for i in range(n):
        message_send(
            sender=agent,
            client_id=client.id,
            body=f"Message {i}",
            idempotency_key=str(uuid.uuid4()),
            meta=RequestMeta(),
        )


def test_a_worker_killed_mid_attempt_loses_nothing(endpoint, receiver, agent, client_obj):
    first_seen: set[str] = set()

    def respond(request):
        webhook_id = request.headers["webhook-id"]
        if request.json["type"] == "message.sent" and webhook_id not in first_seen:
            first_seen.add(webhook_id)
            time.sleep(5)  # the worker holding this attempt gets killed meanwhile
        return 200, {}, b"ok"

    receiver.respond = respond
    send_many(agent, client_obj, 5)
    doomed = start_worker(concurrency=5)
    try:
        deadline = time.monotonic() + 20
        while len(first_seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(first_seen) == 5, "the first worker never started its attempts"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        stop(doomed)
    rescuer = start_worker()
    try:
        wait_until_delivered(5)
    finally:
        stop(rescuer)
    for delivery in messages():
        attempts = list(delivery.attempts.order_by("number"))
        assert "stopped during the attempt" in attempts[0].error
        assert attempts[-1].status_code == 200


def test_two_workers_never_attempt_one_delivery_at_the_same_time(
    endpoint, receiver, agent, client_obj
):
    def respond(request):
        time.sleep(0.05)
        return 200, {}, b"ok"

    receiver.respond = respond
    # Both running before the first send, so both can take a share however busy the machine.
    workers = [start_worker(concurrency=4, ready=True), start_worker(concurrency=4, ready=True)]
    try:
        send_many(agent, client_obj, 40)
        wait_until_delivered(40)
    finally:
        for worker in workers:
            stop(worker)
    sent = [r for r in receiver.received if r.json["type"] == "message.sent"]
    per_id = Counter(r.headers["webhook-id"] for r in sent)
    assert len(per_id) == 40
    assert set(per_id.values()) == {1}
    assert receiver.max_parallel_per_id == 1
    assert {d.attempts.count() for d in messages()} == {1}
    leased_by = {d.attempts.get().worker.split(":")[1] for d in messages()}
    assert len(leased_by) == 2, "both workers should have taken a share"


def test_a_worker_killed_while_draining_a_queue_loses_nothing(
    endpoint, receiver, agent, client_obj
):
    """kill -9 in the middle of a drain, with a batch in flight and finished attempts waiting
    to be recorded: a second worker delivers the rest; every message arrives, each at least
    once under its one webhook-id, and only what was in flight at the kill may arrive twice."""
    total = 150
    send_many(agent, client_obj, total)
    doomed = start_worker(concurrency=16, ready=True)
    try:
        deadline = time.monotonic() + 60
        while len(receiver.received) < total // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(receiver.received) >= total // 3, "the first worker never got going"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        stop(doomed)
    arrived_before_kill = len(receiver.received)
    assert arrived_before_kill < total, "the queue drained before the kill: make it longer"
    rescuer = start_worker(concurrency=16)
    try:
        wait_until_delivered(total)
    finally:
        stop(rescuer)
    # The kill may cut a request mid-body: the receiver saw part of it, which no signature
    # verifies. Only whole, verified requests count as arrivals.
    whole = [r for r in receiver.received if r.verified]
    assert len(receiver.received) - len(whole) <= 16
    arrivals = Counter(r.headers["webhook-id"] for r in whole if r.json["type"] == "message.sent")
    expected = set(messages().values_list("webhook_id", flat=True))
    assert set(arrivals) == expected
    assert len(expected) == total
    # Duplicates only of attempts the killed worker had not recorded: a worker records what
    # finished before it claims more, so never more than its 16 slots.
    assert sum(n - 1 for n in arrivals.values()) <= 16
