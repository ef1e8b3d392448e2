"""Web Push through the real worker to a push service double on loopback, which verifies the
VAPID JWT and decrypts every push with the device's own keys (tests/delivery/pushdouble.py)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent
from clientdesk.delivery import webpush
from clientdesk.delivery.models import Channel, Delivery, DeliveryStatus, PushSubscription
from clientdesk.delivery.services.push import (
    probably_dead,
    push_receipt_record,
    push_subscribe,
)
from clientdesk.delivery.worker import Worker
from clientdesk.messaging.models import Message
from tests.delivery.pushdouble import Device, PushService, push_service, verify_vapid
from tests.sending import send_text
from tests.servers import child_env

pytestmark = pytest.mark.django_db
MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


@pytest.fixture
def service(settings) -> Iterator[PushService]:
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    settings.DELIVERY_RETRY_SCALE = 0.0
    with push_service() as double:
        yield double


def subscribe(client, device, **extra):
    keys = device.subscription_json()["keys"]
    return push_subscribe(
        client=client, endpoint=device.endpoint, p256dh=keys["p256dh"], auth=keys["auth"], **extra
    ).subscription


def step() -> None:
    Worker(concurrency=4, name="test-worker").run_once()


def pushes() -> list[Delivery]:
    return list(Delivery.objects.filter(channel=Channel.PUSH).order_by("created_at"))


def test_a_push_is_encrypted_for_the_device_and_signed_for_its_push_service(
    service, agent, client_obj
):
    device = service.device("phone")
    subscribe(client_obj, device)
    result = send_text(agent, client_obj, "Your contract is ready, {{firstName}}")
    assert service.pushes == []  # nothing leaves before the worker runs
    step()

    (push,) = service.wait_for(1)
    message = Message.objects.get(pk=result.message_id)
    # The JWT verified with the key in the header, which is the key browsers subscribe with.
    assert push.vapid_key == webpush.vapid_public_key()
    assert push.claims["aud"] == service.url
    assert push.claims["sub"] == settings.VAPID_SUBJECT
    assert push.claims["sub"].startswith(("mailto:", "https://"))
    assert time.time() < push.claims["exp"] <= time.time() + 12 * 3600 + 5
    assert push.headers["content-encoding"] == "aes128gcm"
    assert push.headers["ttl"] == "86400"
    assert push.headers["urgency"] == "high"
    topic = push.headers["topic"]
    assert len(topic) <= 32 and set(topic) <= set(webpush._B64URL)
    assert len(push.body) <= 4096
    # The message's text stays off the lock screen by default.
    assert push.content["web_push"] == 8030
    assert push.content["message_id"] == str(message.id)
    assert push.content["notification"] == {
        "title": settings.BUSINESS_NAME,
        "body": f"You have a new message from {settings.BUSINESS_NAME}",
        "navigate": f"/portal/?message={message.id}",
        "lang": client_obj.language or "en",
    }
    assert "contract" not in push.body.decode("latin-1")
    delivery = Delivery.objects.get(channel=Channel.PUSH)
    assert delivery.subject_id == message.id
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts.get().status_code == 201
    assert ActivityEvent.objects.filter(
        type="message.delivered", subject_id=message.id, data__channel="push"
    ).exists()


def test_the_body_is_in_the_push_only_when_configured_and_cut_to_one_record(
    service, agent, client_obj, settings
):
    settings.PUSH_INCLUDE_BODY = True
    settings.PUBLIC_URL = "https://desk.example.com"
    device = service.device("phone")
    subscribe(client_obj, device)
    long_text = "Grüße 👋 <b>&amp;</b> \u202e" + "ä€😀" * 1500  # far over 3,993 bytes in UTF-8
    send_text(agent, client_obj, "Short one")
    send_text(agent, client_obj, long_text)
    step()
    first, second = sorted(service.wait_for(2), key=lambda p: len(p.body))
    assert first.content["notification"]["body"] == "Short one"
    body = second.content["notification"]["body"]
    assert body.endswith("…") and long_text.startswith(body[:-1])
    assert len(body) > 1000  # cut to fit, not dropped
    plaintext = webpush_json(second.content)
    assert 3900 < len(plaintext) <= 3993
    assert second.content["notification"]["navigate"].startswith(
        "https://desk.example.com/portal/?message="
    )


def webpush_json(content) -> bytes:
    import json

    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def test_two_clients_devices_never_cross(service, agent, make_client):
    alice, bob = make_client(first_name="Alice"), make_client(first_name="Bob")
    alice_phone, alice_laptop, bob_phone = (
        service.device("a1"),
        service.device("a2"),
        service.device("b1"),
    )
    subscribe(alice, alice_phone)
    subscribe(alice, alice_laptop)
    subscribe(bob, bob_phone)
    to_alice = send_text(agent, alice, "For Alice")
    step()
    received = service.wait_for(2)
    time.sleep(0.3)  # nothing more arrives
    assert sorted(p.path for p in service.pushes) == ["/push/a1", "/push/a2"]
    assert {p.content["message_id"] for p in received} == {str(to_alice.message_id)}
    # Each push decrypted with its own device's keys only (the double holds each device's).
    alice_phone_push = next(p for p in received if p.path == "/push/a1")
    with pytest.raises(Exception):  # noqa: B017 - any failure to decrypt
        bob_phone.decrypt(alice_phone_push.body)
    send_text(agent, bob, "For Bob")
    step()
    service.wait_for(3)
    assert service.pushes[2].path == "/push/b1"
    # The topic collapses per client: Alice's two devices share one, Bob's differs.
    assert received[0].headers["topic"] == received[1].headers["topic"]
    assert service.pushes[2].headers["topic"] != received[0].headers["topic"]


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_deleted_and_on_the_timeline(
    service, agent, client_obj, status, client
):
    phone, laptop = service.device("phone"), service.device("laptop")
    subscribe(client_obj, phone)
    kept = subscribe(client_obj, laptop)
    service.respond = lambda push: (status, {}) if push.path == "/push/phone" else (201, {})
    send_text(agent, client_obj)
    step()
    service.wait_for(2)
    assert list(PushSubscription.objects.all()) == [kept]
    failed = Delivery.objects.get(channel=Channel.PUSH, status=DeliveryStatus.FAILED)
    assert failed.attempt_count == 1  # never retried
    assert "push subscription is gone" in failed.last_error
    (expired,) = ActivityEvent.objects.filter(type="push.subscription_expired")
    assert expired.client_id == client_obj.id
    assert expired.data["status_code"] == status
    assert expired.data["endpoint_origin"] == service.url
    assert expired.subject_id is None  # a device, not a message
    gone_id = expired.data["subscription_id"]
    assert gone_id != str(kept.id)
    client.force_login(agent)
    timeline = client.get(f"/clients/{client_obj.id}/activity/").content.decode()
    assert f"Push subscription expired: the push service answered <bdi>{status}</bdi>" in timeline
    # The next message goes to the device that is left only.
    send_text(agent, client_obj)
    step()
    service.wait_for(3)
    assert service.pushes[2].path == "/push/laptop"


def test_429_then_201_honours_retry_after(service, agent, client_obj, settings):
    settings.DELIVERY_RETRY_SCALE = 1.0
    answers = iter([(429, {"Retry-After": "120"}), (201, {})])
    service.respond = lambda push: next(answers)
    subscribe(client_obj, service.device("phone"))
    send_text(agent, client_obj)
    before = timezone.now()
    step()
    delivery = Delivery.objects.get(channel=Channel.PUSH)
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.PENDING, 429)
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 119 <= wait <= 125  # Retry-After, not the schedule's 60 s floor for a throttle
    step()  # not due yet: nothing is sent
    assert len(service.pushes) == 1
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    step()
    service.wait_for(2)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [a.status_code for a in delivery.attempts.order_by("number")] == [429, 201]
    # The same encrypted content both times (the same message and receipt), new encryption.
    first, second = service.pushes
    assert first.content == second.content and first.body != second.body


def test_5xx_is_retried_on_the_schedule(service, agent, client_obj):
    answers = iter([(503, {}), (500, {}), (201, {})])
    service.respond = lambda push: next(answers)
    subscribe(client_obj, service.device("phone"))
    send_text(agent, client_obj)
    for _ in range(3):
        step()
    service.wait_for(3)
    delivery = Delivery.objects.get(channel=Channel.PUSH)
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempt_count == 3


def test_413_falls_back_to_the_minimal_notification(service, agent, client_obj, settings):
    settings.PUSH_INCLUDE_BODY = True
    service.respond = lambda push: (
        (413, {}) if "body" in push.content["notification"] else (201, {})
    )
    subscribe(client_obj, service.device("phone"))
    result = send_text(agent, client_obj, "A long letter " * 200)
    step()
    first, second = service.wait_for(2)
    assert "A long letter" in first.content["notification"]["body"]
    assert second.content["notification"].keys() == {"title", "navigate"}
    assert second.content["message_id"] == str(result.message_id)
    assert second.content["receipt"] == first.content["receipt"]
    delivery = Delivery.objects.get(channel=Channel.PUSH)
    assert delivery.status == DeliveryStatus.DELIVERED
    attempt = delivery.attempts.get()
    assert attempt.status_code == 201 and "413" in attempt.response_excerpt


def test_a_device_without_receipts_is_probably_dead_until_it_confirms(
    service, agent, client_obj, settings
):
    settings.PUSH_DEAD_AFTER = 3
    live, silent = service.device("live"), service.device("silent")
    subscribe(client_obj, live)
    subscribe(client_obj, silent)
    for n in range(3):
        send_text(agent, client_obj, f"Message {n}")
        step()
        for push in service.wait_for(2 * (n + 1))[-2:]:
            if push.path == "/push/live":  # its service worker confirms what it shows
                assert push_receipt_record(
                    receipt=push.content["receipt"], message_id=_uuid(push.content["message_id"])
                )
    by_path = {s.endpoint.rsplit("/", 1)[1]: s for s in PushSubscription.objects.all()}
    assert by_path["live"].unconfirmed_pushes == 0
    assert not probably_dead(by_path["live"])
    assert by_path["silent"].unconfirmed_pushes == 3
    assert probably_dead(by_path["silent"])
    # A receipt at last (the device was only offline) brings it back.
    last_to_silent = [p for p in service.pushes if p.path == "/push/silent"][-1]
    push_receipt_record(
        receipt=last_to_silent.content["receipt"],
        message_id=_uuid(last_to_silent.content["message_id"]),
    )
    silent_row = PushSubscription.objects.get(pk=by_path["silent"].pk)
    assert silent_row.unconfirmed_pushes == 0 and silent_row.last_receipt_at is not None


def test_a_receipt_before_its_push_is_recorded_is_not_counted_against_the_device(
    service, agent, client_obj
):
    """The service worker can confirm a push before the worker records it as delivered."""
    from clientdesk.delivery.services.queue import (
        attempts_record,
        deliveries_claim,
        delivery_attempt,
    )

    subscribe(client_obj, service.device("fast"))
    send_text(agent, client_obj)
    claimed = deliveries_claim(worker="w", limit=4)
    attempted = [
        delivery_attempt(delivery=d, endpoint=claimed.endpoint) for d in claimed.deliveries
    ]
    (push,) = service.wait_for(1)
    # The receipt arrives between the push service's 201 and the worker's record of it.
    assert push_receipt_record(
        receipt=push.content["receipt"], message_id=_uuid(push.content["message_id"])
    )
    attempts_record(worker="w", attempted=attempted)
    assert Delivery.objects.get(channel=Channel.PUSH).status == DeliveryStatus.DELIVERED
    assert PushSubscription.objects.get().unconfirmed_pushes == 0


def _uuid(text):
    import uuid

    return uuid.UUID(text)


def test_the_vapid_key_is_generated_once_into_var_or_taken_from_the_setting(settings, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    settings.VAR_DIR = tmp_path
    settings.VAPID_PRIVATE_KEY = ""
    webpush.reset_key_cache()
    try:
        first = webpush.vapid_public_key()
        assert (tmp_path / "vapid_private_key.pem").stat().st_mode & 0o777 == 0o600
        webpush.reset_key_cache()
        assert webpush.vapid_public_key() == first  # read back, not made again
        raw = webpush.b64url_decode(first)
        assert len(raw) == 65 and raw[0] == 4

        scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
        settings.VAPID_PRIVATE_KEY = webpush.b64url(scalar.to_bytes(32, "big"))
        webpush.reset_key_cache()
        given = webpush.vapid_public_key()
        assert given != first
        claims, key = verify_vapid(webpush.vapid_authorization("https://push.example/x/y"))
        assert key == given and claims["aud"] == "https://push.example"

        settings.VAPID_PRIVATE_KEY = "not a key"
        webpush.reset_key_cache()
        with pytest.raises(webpush.VapidKeyError):
            webpush.vapid_public_key()
    finally:
        webpush.reset_key_cache()


@pytest.mark.django_db(transaction=True)
def test_a_send_reaches_the_push_service_within_5_s_through_a_worker_process(
    agent, client_obj, settings
):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    webpush.reset_key_cache()
    with push_service() as double:
        subscribe(client_obj, double.device("phone"))
        worker = subprocess.Popen(
            [sys.executable, str(MANAGE), "run_worker", "--concurrency=2"],
            env=child_env(CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert worker.stdout is not None
            line = worker.stdout.readline()  # once Django is loaded and the loop runs
            assert b"running" in line, (line, worker.stderr.read() if worker.stderr else b"")
            sent_at = time.monotonic()
            result = send_text(agent, client_obj, "Hello {{firstName}}")
            (push,) = double.wait_for(1, timeout=30)
            took = push.received_at - sent_at
            print(f"send to push service through the worker process: {took:.2f} s")
            assert took < 5.0
            # The worker process signed with the same key the API hands to browsers.
            assert push.vapid_key == webpush.vapid_public_key()
            assert push.content["message_id"] == str(result.message_id)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    assert os.path.exists(Path(settings.VAR_DIR) / "vapid_private_key.pem")


def test_staff_see_the_client_s_devices_and_a_probably_dead_one_in_the_drawer(
    service, agent, client_obj, make_client, client, settings
):
    settings.PUSH_DEAD_AFTER = 2
    other = make_client()
    subscribe(client_obj, service.device("alive"), user_agent="Firefox <b>on</b> Android")
    subscribe(client_obj, service.device("silent"), user_agent="Safari on iPhone")
    subscribe(other, service.device("elsewhere"), user_agent="Someone else's browser")
    for n in range(2):
        send_text(agent, client_obj, f"Message {n}")
        step()
    for push in service.wait_for(4):
        if push.path == "/push/alive":
            push_receipt_record(
                receipt=push.content["receipt"], message_id=_uuid(push.content["message_id"])
            )
    client.force_login(agent)
    drawer = client.get(f"/clients/{client_obj.id}/").content.decode()
    url = f"/integrations/clients/{client_obj.id}/push-devices/"
    assert url in drawer
    page = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Firefox &lt;b&gt;on&lt;/b&gt; Android" in page  # escaped
    assert page.count("Probably dead") == 1
    assert "Safari on iPhone</strong>" in page.split("Probably dead")[0].rsplit("<li", 1)[1]
    assert "Someone else" not in page
    empty = client.get(
        f"/integrations/clients/{other.id}/push-devices/".replace(
            str(other.id), str(make_client().id)
        )
    )
    assert "has not turned on notifications" in empty.content.decode()


@pytest.mark.django_db(transaction=True)
def test_racing_subscriptions_of_one_endpoint_leave_one_device(make_client, settings):
    from tests.racing import race

    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    clients = [make_client(), make_client()]
    device = Device.new("http://127.0.0.1:9/push/shared")
    keys = device.subscription_json()["keys"]

    def act(n: int):
        return push_subscribe(
            client=clients[n % 2],
            endpoint=device.endpoint,
            p256dh=keys["p256dh"],
            auth=keys["auth"],
        )

    results, errors = race(8, act)
    assert errors == []
    assert len(results) == 8
    (row,) = PushSubscription.objects.all()
    assert row.client_id in {c.id for c in clients}


def test_a_push_held_by_quiet_hours_waits_with_the_message_s_other_notifications(
    service, agent, client_obj
):
    from clientdesk.core.request_meta import RequestMeta
    from clientdesk.messaging.models import Direction
    from clientdesk.messaging.services.writing import MessageWrite, messages_write

    subscribe(client_obj, service.device("phone"))
    later = timezone.now() + timedelta(hours=9)
    messages_write(
        writes=[
            MessageWrite(
                client=client_obj,
                direction=Direction.OUT,
                sender=agent,
                body="Our autumn offers",
                meta=RequestMeta(),
                notify_at=later,
            )
        ]
    )
    (push,) = pushes()
    assert push.next_attempt_at == later
    step()
    time.sleep(0.3)
    assert service.pushes == []  # not before the quiet hours end


def test_the_message_api_lists_each_push_as_a_delivery(service, agent, client_obj, api_for):
    subscribe(client_obj, service.device("phone"))
    subscribe(client_obj, service.device("laptop"))
    sent = send_text(agent, client_obj)
    step()
    service.wait_for(2)
    shown = api_for(agent).get(f"/api/v1/messages/{sent.message_id}").json()
    channels = [c["channel"] for c in shown["channels"]]
    assert channels == ["cabinet", "push", "push"]
    assert {c["status"] for c in shown["channels"][1:]} == {"delivered"}


def test_a_device_turned_off_after_the_send_changes_nothing_for_the_send(
    service, agent, client_obj
):
    from clientdesk.delivery.services.push import push_unsubscribe

    device = service.device("phone")
    subscribe(client_obj, device)
    sent = send_text(agent, client_obj)
    assert push_unsubscribe(client=client_obj, endpoint=device.endpoint)
    service.respond = lambda push: (410, {})  # the browser unsubscribed too
    step()
    service.wait_for(1)
    (push,) = pushes()
    assert push.status == DeliveryStatus.FAILED and push.subject_id == sent.message_id
    # It was already forgotten: no "expired" entry for a device the client turned off.
    assert not ActivityEvent.objects.filter(type="push.subscription_expired").exists()


@pytest.mark.django_db(transaction=True)
def test_a_push_row_may_name_a_device_forgotten_meanwhile(agent, client_obj):
    """A device forgotten while a message to its client is written must not fail the send:
    the push row's reference to it has no constraint (checked at commit on PostgreSQL)."""
    import uuid

    from django.db import transaction

    from clientdesk.delivery.services.queue import Outgoing, deliveries_create

    with transaction.atomic():
        (row,) = deliveries_create(
            outgoing=[Outgoing(Channel.PUSH, client_obj, uuid.uuid4(), {}, None, uuid.uuid4())]
        )
    assert Delivery.objects.get(pk=row.pk).push_subscription_id == row.push_subscription_id


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "postgres" not in os.environ.get("DATABASE_URL", ""),
    reason="the order lock is PostgreSQL's; SQLite has one writer at a time",
)
def test_nothing_waits_behind_the_order_lock_in_the_push_flows(agent, client_obj, settings):
    """As tests/delivery/test_live_lock_order.py checks the other flows: a send to a client
    with devices, a push delivered, a push whose device is gone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clientdesk.delivery.outcomes import Outcome
    from clientdesk.delivery.services.queue import Attempted, attempts_record, deliveries_claim
    from tests.delivery.test_live_lock_order import LOCK, after_lock

    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    subscribe(client_obj, Device.new("http://127.0.0.1:9/push/a"))
    subscribe(client_obj, Device.new("http://127.0.0.1:9/push/b"))
    flows = {}
    with CaptureQueriesContext(connection) as q:
        send_text(agent, client_obj)
    flows["send with devices"] = q.captured_queries
    first, second = deliveries_claim(worker="w1", limit=10).deliveries
    for name, leased, outcome in [
        ("push delivered", first, Outcome(ok=True, duration_ms=3, status_code=201)),
        ("push gone", second, Outcome(ok=False, duration_ms=3, status_code=410, gone=True)),
    ]:
        with CaptureQueriesContext(connection) as q:
            attempts_record(worker="w1", attempted=[Attempted(leased, timezone.now(), outcome)])
        flows[name] = q.captured_queries
    assert PushSubscription.objects.count() == 1
    for name, queries in flows.items():
        assert any(LOCK.search(x["sql"]) for x in queries), f"{name}: no live event recorded"
        assert after_lock(queries) == [], name
