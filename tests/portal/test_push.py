"""The portal's Web Push API: the key, a client's devices (hostile bodies included), receipts,
the service worker and the manifest."""

import json
import struct
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clientdesk.delivery import webpush
from clientdesk.delivery.models import Channel, Delivery, PushSubscription
from clientdesk.delivery.worker import Worker
from tests.delivery.pushdouble import Device, b64u, push_service
from tests.sending import send_text

pytestmark = pytest.mark.django_db
SUBSCRIPTIONS = "/portal/api/v1/push/subscriptions"
RECEIPTS = "/portal/api/v1/push/receipts"
PUBLIC_ENDPOINT = "https://fcm.googleapis.com/fcm/send/"


@pytest.fixture
def loopback(settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    settings.DELIVERY_RETRY_SCALE = 0.0


def subscribe(api, device: Device, **changes):
    body = {**device.subscription_json(), **changes}
    return api.post(SUBSCRIPTIONS, body, format="json")


def assert_problem(response, status=422, *words):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    text = response.content.decode()
    for word in words:
        assert word in text, (word, text)


def test_the_key_is_the_uncompressed_p256_public_key(client):
    response = client.get("/portal/api/v1/push/key")
    assert response.status_code == 200
    raw = webpush.b64url_decode(response.json()["public_key"])
    assert len(raw) == 65 and raw[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # a point on the curve
    assert response.json()["public_key"] == webpush.vapid_public_key()


def test_subscribe_201_the_same_endpoint_again_200_and_unsubscribe_204(
    portal_for, client_obj, loopback
):
    api = portal_for(client_obj)
    device = Device.new("http://127.0.0.1:9/push/one")
    first = subscribe(api, device, expirationTime=1_900_000_000_000)
    assert first.status_code == 201, first.content
    assert first.json()["probably_dead"] is False
    assert first.json()["expiration_time"].startswith("2030-")
    renewed = Device.new(device.endpoint)  # the browser renewed its keys
    again = subscribe(api, renewed, expirationTime=None)
    assert again.status_code == 200
    row = PushSubscription.objects.get()
    assert row.client_id == client_obj.id
    assert row.p256dh == b64u(renewed.public_bytes) and row.expiration_time is None
    # Many devices per client.
    assert subscribe(api, Device.new("http://127.0.0.1:9/push/two")).status_code == 201
    listed = api.get(SUBSCRIPTIONS).json()
    assert [d["endpoint"] for d in listed["items"]] == [
        "http://127.0.0.1:9/push/one",
        "http://127.0.0.1:9/push/two",
    ]
    assert listed["dead_after"] == 5
    gone = api.delete(SUBSCRIPTIONS, {"endpoint": device.endpoint}, format="json")
    assert gone.status_code == 204
    assert (
        api.delete(SUBSCRIPTIONS, {"endpoint": device.endpoint}, format="json").status_code == 204
    )
    assert [d.endpoint for d in PushSubscription.objects.all()] == ["http://127.0.0.1:9/push/two"]


def test_a_client_sees_and_removes_only_its_own_devices(portal_for, make_client, loopback):
    alice, bob = make_client(), make_client()
    alice_api, bob_api = portal_for(alice), portal_for(bob)
    alice_device = Device.new("http://127.0.0.1:9/push/alice")
    assert subscribe(alice_api, alice_device).status_code == 201
    assert bob_api.get(SUBSCRIPTIONS).json()["items"] == []
    deleted = bob_api.delete(SUBSCRIPTIONS, {"endpoint": alice_device.endpoint}, format="json")
    assert deleted.status_code == 204
    assert PushSubscription.objects.get().client_id == alice.id  # untouched


def test_the_portal_push_api_takes_no_staff_token_and_no_missing_one(
    client, api_for, agent, loopback
):
    body = Device.new("http://127.0.0.1:9/push/x").subscription_json()
    assert_problem(client.post(SUBSCRIPTIONS, body, content_type="application/json"), 401)
    staff = api_for(agent)
    assert_problem(staff.post(SUBSCRIPTIONS, body, format="json"), 401)
    assert_problem(staff.get(SUBSCRIPTIONS), 401)
    assert PushSubscription.objects.count() == 0


def test_a_private_or_loopback_endpoint_is_refused_unless_allowed(portal_for, client_obj):
    api = portal_for(client_obj)
    for endpoint, words in [
        ("https://127.0.0.1/push", ("loopback",)),
        ("https://169.254.169.254/latest/meta-data", ("link-local",)),
        ("https://10.1.2.3/push", ("private network",)),
        ("https://[::1]/push", ("loopback",)),
        ("http://fcm.googleapis.com/fcm/send/x", ("https://",)),
        ("file:///etc/passwd", ("https://",)),
        ("https://user:pw@push.example/x", ()),
    ]:
        assert_problem(subscribe(api, Device.new(endpoint)), 422, *words)
    assert PushSubscription.objects.count() == 0


@pytest.mark.parametrize(
    "change, words",
    [
        ({"keys": {"p256dh": "!!!not base64!!!", "auth": b64u(b"x" * 16)}}, ["p256dh"]),
        ({"keys": {"p256dh": b64u(b"\x04" + b"\x01" * 64), "auth": b64u(b"x" * 16)}}, ["P-256"]),
        ({"keys": {"p256dh": b64u(b"\x04" * 33), "auth": b64u(b"x" * 16)}}, ["65 bytes"]),
        ({"keys": {"p256dh": "A" * 100_000, "auth": b64u(b"x" * 16)}}, ["p256dh"]),
        ({"keys": {"auth": b64u(b"x" * 16)}}, ["p256dh"]),
        ({"keys": "p256dh"}, ["keys"]),
        ({"keys": [1, 2]}, ["keys"]),
        ({"endpoint": "https://push.example/" + "a" * 5000}, ["endpoint"]),
        ({"endpoint": ""}, ["endpoint"]),
        ({"endpoint": ["https://push.example/x"]}, ["endpoint"]),
        ({"endpoint": "https://push.example/\x00x"}, ["endpoint"]),
        ({"endpoint": "https://push.example/\nx"}, ["endpoint"]),
        ({"expirationTime": "tomorrow"}, ["expirationTime"]),
        ({"expirationTime": 10**30}, ["expirationTime"]),
        ({"expirationTime": True}, ["expirationTime"]),
    ],
)
def test_hostile_subscription_bodies_are_refused_with_a_problem(
    portal_for, client_obj, loopback, change, words
):
    api = portal_for(client_obj)
    body = Device.new("http://127.0.0.1:9/push/x").subscription_json()
    body.update(change)
    assert_problem(api.post(SUBSCRIPTIONS, body, format="json"), 422, *words)
    assert PushSubscription.objects.count() == 0


def test_bad_auth_secrets_are_refused(portal_for, client_obj, loopback):
    api = portal_for(client_obj)
    device = Device.new("http://127.0.0.1:9/push/x")
    keys = device.subscription_json()["keys"]
    for auth, words in [
        (b64u(b"short"), ["16 bytes"]),
        ("***", ["auth"]),
        ("é" * 20, ["auth"]),
        ("\ud800", []),  # a lone surrogate: the JSON parser refuses it
        ("A" * 1000, ["auth"]),
    ]:
        body = {**device.subscription_json(), "keys": {**keys, "auth": auth}}
        raw = json.dumps(body)
        response = api.post(SUBSCRIPTIONS, raw, content_type="application/json")
        assert_problem(response, 422, *words)
    nested = json.dumps({"endpoint": device.endpoint, "keys": {"a": [[[[[[[[[]]]]]]]]]}})
    assert_problem(api.post(SUBSCRIPTIONS, nested, content_type="application/json"), 422)
    deep = '{"keys":' + "[" * 5000 + "]" * 5000 + "}"
    assert_problem(api.post(SUBSCRIPTIONS, deep, content_type="application/json"), 400, "nested")
    assert_problem(api.post(SUBSCRIPTIONS, b"\xff\xfe", content_type="application/json"), 400)
    assert PushSubscription.objects.count() == 0


def test_a_client_keeps_at_most_20_devices(portal_for, client_obj, loopback):
    api = portal_for(client_obj)
    for n in range(23):
        assert subscribe(api, Device.new(f"http://127.0.0.1:9/push/{n}")).status_code == 201
    kept = sorted(int(s.endpoint.rsplit("/", 1)[1]) for s in PushSubscription.objects.all())
    assert kept == list(range(3, 23))  # the oldest forgotten


def test_an_endpoint_moves_to_the_client_signed_in_on_that_browser(
    portal_for, make_client, loopback
):
    first, second = make_client(), make_client()
    device = Device.new("http://127.0.0.1:9/push/shared")
    assert subscribe(portal_for(first), device).status_code == 201
    assert subscribe(portal_for(second), device).status_code == 201
    assert PushSubscription.objects.get().client_id == second.id


def test_receipts_need_the_push_s_own_signed_token(portal_for, client_obj, agent, client, loopback):
    with push_service() as double:
        device = double.device("phone")
        assert subscribe(portal_for(client_obj), device).status_code == 201
        sent = send_text(agent, client_obj)
        Worker(concurrency=2, name="t").run_once()
        (push,) = double.wait_for(1)
    receipt = push.content["receipt"]
    message_id = push.content["message_id"]
    row = PushSubscription.objects.get()
    assert row.unconfirmed_pushes == 1 and row.last_receipt_at is None
    # No session: a service worker has none. The receipt is the credential.
    ok = client.post(
        RECEIPTS, {"message_id": message_id, "receipt": receipt}, content_type="application/json"
    )
    assert ok.status_code == 204
    row.refresh_from_db()
    assert row.unconfirmed_pushes == 0 and row.last_receipt_at is not None
    # Replayed: the same answer, nothing more.
    again = client.post(
        RECEIPTS, {"message_id": message_id, "receipt": receipt}, content_type="application/json"
    )
    assert again.status_code == 204
    for body, status in [
        ({"message_id": message_id, "receipt": receipt[:-2] + "xx"}, 422),
        ({"message_id": str(uuid.uuid4()), "receipt": receipt}, 422),
        ({"message_id": message_id, "receipt": "A" * 5000}, 422),
        ({"message_id": "not-a-uuid", "receipt": receipt}, 422),
        ({"receipt": receipt}, 422),
    ]:
        assert_problem(client.post(RECEIPTS, body, content_type="application/json"), status)
    assert Delivery.objects.get(channel=Channel.PUSH).subject_id == sent.message_id


def test_the_service_worker_is_served_for_the_cabinet_s_scope(client):
    response = client.get("/portal/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/portal/"
    assert response["Cache-Control"] == "no-cache"
    text = response.content.decode()
    for needed in ('"/portal/api/v1/push/receipts"', "showNotification", "notificationclick"):
        assert needed in text
    assert client.post("/portal/sw.js").status_code == 405


def test_the_manifest_makes_the_cabinet_installable(client):
    response = client.get("/portal/manifest.webmanifest")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/manifest+json")
    manifest = response.json()
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/portal/" and manifest["scope"] == "/portal/"
    sizes = {}
    for icon in manifest["icons"]:
        png = client.get(icon["src"])
        assert png.status_code == 200
        data = b"".join(png.streaming_content) if png.streaming else png.content
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert icon["sizes"] == f"{width}x{height}"
        sizes[icon["sizes"]] = icon["purpose"]
    assert {"192x192", "512x512"} <= set(sizes)
    page = client.get("/portal/").content.decode()
    assert '<link rel="manifest" href="/portal/manifest.webmanifest">' in page
    apple = Path(__file__).resolve().parents[2] / (
        "src/clientdesk/portal/static/portal/icons/apple-touch-icon.png"
    )
    assert struct.unpack(">II", apple.read_bytes()[16:24]) == (180, 180)
    assert "apple-touch-icon.png" in page
