"""Web Push in the cabinet, in Chromium: the service worker registers on load without asking
anything, the manifest is installable, and only "Turn on notifications" asks the permission and
subscribes with Clientdesk's VAPID key.

Chromium cannot subscribe offline (its push service is Google's), so the first test stops where
the browser reports that; the second stands in for the browser's push service alone (its
`PushManager` hands out a subscription whose endpoint is the push double on loopback) and lets
everything of ours run: the cabinet's script, the API, the worker, the encryption, and the
service worker, which gets the decrypted push through the DevTools protocol, shows it and sends
its receipt."""

import io
import json
import time

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from clientdesk.delivery import webpush
from clientdesk.delivery.models import PushSubscription
from clientdesk.delivery.worker import Worker
from tests.delivery.pushdouble import push_service
from tests.sending import send_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Counts permission prompts and records the key a subscription is asked with.
WATCH = """
window.__asked = 0;
window.__subscribeKey = null;
if (window.Notification) {
  const ask = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => { window.__asked += 1; return ask(...args); };
}
if (window.PushManager) {
  const subscribe = PushManager.prototype.subscribe;
  PushManager.prototype.subscribe = function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    window.__subscribeKey = btoa(String.fromCharCode(...key))
      .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
    return subscribe.call(this, options);
  };
}
"""

# The browser's push service, replaced: a subscription to the push double (set by the test).
FAKE_PUSH_SERVICE = """
function fakeSubscription() {
  const json = JSON.parse(sessionStorage.getItem("fake-subscription"));
  return {
    endpoint: json.endpoint,
    toJSON: () => json,
    unsubscribe: async () => { sessionStorage.removeItem("fake-subscribed"); return true; },
  };
}
PushManager.prototype.subscribe = async function () {
  sessionStorage.setItem("fake-subscribed", "1");
  return fakeSubscription();
};
PushManager.prototype.getSubscription = async function () {
  return sessionStorage.getItem("fake-subscribed") ? fakeSubscription() : null;
};
"""


def portal_link(live_server, client) -> str:
    out = io.StringIO()
    call_command("portal_link", client.external_id, "--base-url", live_server.url, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def _worker_scope(page) -> str:
    return page.evaluate(
        "navigator.serviceWorker.ready.then((r) => r.scope)"
    )  # resolves once the worker is active


def test_the_button_asks_only_when_pressed_and_subscribes_with_our_key(
    page, live_server, client_obj, screenshot
) -> None:
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    page.add_init_script(WATCH)
    page.goto(portal_link(live_server, client_obj))
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()

    # The worker registers on load, scoped to the cabinet, and nothing was asked.
    assert _worker_scope(page) == f"{live_server.url}/portal/"
    assert page.evaluate("window.__asked") == 0

    manifest = page.evaluate(
        """fetch(document.querySelector('link[rel="manifest"]').href).then((r) => r.json())"""
    )
    assert manifest["display"] == "standalone"
    assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    for icon in manifest["icons"]:
        status = page.evaluate(f"fetch({json.dumps(icon['src'])}).then((r) => r.status)")
        assert status == 200

    page.get_by_role("button", name="Notification settings").click()
    section = page.get_by_role("region", name="Notifications on this device")
    expect(section).to_be_visible()
    expect(section.get_by_role("status")).to_have_text("Notifications are off on this device.")
    assert page.evaluate("window.__asked") == 0
    screenshot(page, "notifications-off")

    section.get_by_role("button", name="Turn on notifications").click()
    # Offline, Chromium's own push service cannot be reached: the cabinet says so plainly.
    alert = section.get_by_role("alert")
    expect(alert).to_contain_text("Notifications could not be turned on", timeout=30_000)
    assert page.evaluate("window.__asked") == 1
    assert page.evaluate("window.__subscribeKey") == webpush.vapid_public_key()
    assert PushSubscription.objects.count() == 0


def test_turn_on_a_push_shown_and_confirmed_by_the_service_worker_and_turn_off(
    page, live_server, client_obj, agent, settings, screenshot
) -> None:
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    with push_service() as double:
        device = double.device("chromium")
        page.context.grant_permissions(["notifications"], origin=live_server.url)
        page.add_init_script(FAKE_PUSH_SERVICE)
        page.goto(portal_link(live_server, client_obj))
        expect(page.get_by_role("heading", name="Messages")).to_be_visible()
        page.evaluate(
            "(json) => sessionStorage.setItem('fake-subscription', json)",
            json.dumps(device.subscription_json()),
        )
        page.get_by_role("button", name="Notification settings").click()
        section = page.get_by_role("region", name="Notifications on this device")
        section.get_by_role("button", name="Turn on notifications").click()
        expect(section.get_by_role("status")).to_have_text("Notifications are on for this device.")
        expect(section.get_by_role("button", name="Turn off")).to_be_visible()
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "notifications-on-phone")
        subscription = PushSubscription.objects.get()
        assert (subscription.client_id, subscription.endpoint) == (client_obj.id, device.endpoint)

        sent = send_text(agent, client_obj, "Your documents are ready")
        Worker(concurrency=2, name="e2e").run_once()
        (push,) = double.wait_for(1)
        assert push.content["message_id"] == str(sent.message_id)

        # The decrypted push to the cabinet's service worker, as the browser would hand it on.
        cdp = page.context.new_cdp_session(page)
        registrations: list[dict] = []
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda event: registrations.extend(event["registrations"]),
        )
        cdp.send("ServiceWorker.enable")
        deadline = time.monotonic() + 20
        while not registrations and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        (registration,) = [r for r in registrations if not r.get("isDeleted")]
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": live_server.url,
                "registrationId": registration["registrationId"],
                "data": json.dumps(push.content),
            },
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            subscription.refresh_from_db()
            if subscription.last_receipt_at is not None:
                break
            time.sleep(0.1)
        assert subscription.last_receipt_at is not None, "the service worker sent no receipt"
        assert subscription.unconfirmed_pushes == 0
        shown = page.evaluate(
            """navigator.serviceWorker.ready
                 .then((r) => r.getNotifications())
                 .then((list) => list.map((n) => ({title: n.title, body: n.body,
                                                   data: n.data})))"""
        )
        assert [n["body"] for n in shown] == ["You have a new message from Clientdesk"]
        assert shown[0]["data"]["navigate"] == (
            f"{live_server.url}/portal/?message={sent.message_id}"
        )

        # Opened from the notification: the cabinet shows that message.
        page.goto(f"{live_server.url}/portal/?message={sent.message_id}")
        item = page.locator(f"#m-{sent.message_id}")
        expect(item.get_by_role("button")).to_have_attribute("aria-expanded", "true")

        page.get_by_role("button", name="Notification settings").click()
        section.get_by_role("button", name="Turn off").click()
        expect(section.get_by_role("status")).to_have_text("Notifications are off on this device.")
        assert PushSubscription.objects.count() == 0
