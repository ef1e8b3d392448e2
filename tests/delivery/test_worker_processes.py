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


def start_worker(concurrency: int = 4) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CLIENTDESK_VAR_DIR": str(settings.VAR_DIR),
        "CLIENTDESK_LEASE_SECONDS": "2",
        "CLIENTDESK_RETRY_SCALE": "0",
        "CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS": "1",
    }
    return subprocess.Popen(
        [sys.executable, str(MANAGE), "run_worker", f"--concurrency={concurrency}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_delivered(count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == count:
            return
        time.sleep(0.1)
    states = Counter(Delivery.objects.values_list("status", flat=True))
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
        if webhook_id not in first_seen:
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
    for delivery in Delivery.objects.all():
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
    workers = [start_worker(concurrency=4), start_worker(concurrency=4)]
    try:
        send_many(agent, client_obj, 40)
        wait_until_delivered(40)
    finally:
        for worker in workers:
            stop(worker)
    per_id = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(per_id) == 40
    assert set(per_id.values()) == {1}
    assert receiver.max_parallel_per_id == 1
    assert {d.attempts.count() for d in Delivery.objects.all()} == {1}
    leased_by = {d.attempts.get().worker.split(":")[1] for d in Delivery.objects.all()}
    assert len(leased_by) == 2, "both workers should have taken a share"
