"""Live delivery status in a real browser, against a real webhook receiver and a real worker.

The receiver is an HTTP server on 127.0.0.1 that verifies every request with the Standard
Webhooks library; the worker is `clientdesk.delivery.worker.Worker` in a thread of this process,
on the same (transactional) test database as the live server.
"""

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import Locator, Page, expect
from standardwebhooks import Webhook

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core import notify
from clientdesk.core.errors import ValidationFailed
from clientdesk.delivery.models import Delivery, DeliveryStatus, OutgoingEndpoint
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.delivery.services.queue import delivery_retry_now
from clientdesk.delivery.worker import Worker
from tests.e2e.helpers import (
    message_box,
    open_send_panel,
    send_button,
    sent_items,
    stored,
    toasts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Login = Callable[[User], Page]
MakeStaff = Callable[..., User]
Screenshot = Callable[[Any, str], Any]

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# Retry delays are the schedule (5 s, 5 min, 30 min, 2 h, ...) times this: 10 ms, 0.6 s, 3.6 s,
# 14 s: a delivery to a dead endpoint shows "Retrying" for seconds, not hours.
RETRY_SCALE = 0.002


# --- A real receiver ---------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    event: Any  # what `Webhook.verify` returned, or None when the signature did not verify

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint on loopback that can be stopped (connections refused) and started
    again on the same port."""

    secret: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)
    # The worker also signs ledger checkpoints and sends each (audit.checkpoint): kept apart,
    # these tests are about the messages' deliveries.
    checkpoints: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/clientdesk"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    event = Webhook(receiver.secret).verify(body, headers)
                except Exception:  # recorded as "did not verify"; the test asserts on it
                    event = None
                item = Received(headers, body, event)
                if event is not None and event.get("type") == "audit.checkpoint":
                    receiver.checkpoints.append(item)
                else:
                    receiver.received.append(item)
                answer = json.dumps(
                    {"received": headers.get("webhook-id"), "verified": event is not None}
                ).encode()
                self.send_response(receiver.status if event is not None else 400)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket: from now on connections to the port are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"expected {count} requests: {self.received}"
            time.sleep(0.02)
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def private_urls(settings: Any) -> None:
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    settings.DELIVERY_RETRY_SCALE = RETRY_SCALE


@pytest.fixture
def administrator(make_staff: MakeStaff) -> User:
    return make_staff("Administrator", first_name="Ada", last_name="Admin")


@pytest.fixture
def endpoint(receiver: Receiver, administrator: User, private_urls: None) -> OutgoingEndpoint:
    configured, created = endpoint_configure(user=administrator, url=receiver.url, enabled=True)
    assert created
    receiver.secret = configured.secret
    return configured


@pytest.fixture
def worker(live_server: Any, endpoint: OutgoingEndpoint) -> Iterator[Worker]:
    """A real delivery worker in a thread; stopped (and its connections closed) afterwards."""
    w = Worker(concurrency=2)
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            w.run()
        except BaseException as error:  # surfaced by the fixture, not lost in the thread
            crashed.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="delivery-worker", daemon=True)
    thread.start()
    try:
        yield w
    finally:
        w.stop()
        notify.work_due()  # wake it from its idle wait so it sees the stop
        thread.join(timeout=15)
        assert not thread.is_alive(), "the delivery worker did not stop"
        assert not crashed, f"the delivery worker crashed: {crashed}"


def webhook_chip(item: Locator) -> Locator:
    return item.locator(".deliveries .status").filter(has_text="Webhook:")


def hhmmss(moment: datetime | None) -> str:
    assert moment is not None
    return moment.strftime("%H:%M:%S")  # TIME_ZONE is UTC in the tests


# --- Delivered -----------------------------------------------------------------------------


def test_status_chip_turns_delivered_without_a_reload_and_the_receiver_verifies_it(
    page: Page,
    login: Login,
    agent_user: User,
    client_obj: Client,
    receiver: Receiver,
    worker: Worker,
    screenshot: Screenshot,
) -> None:
    login(agent_user)
    page.evaluate("window.__samePage = true")
    dialog = open_send_panel(page, client_obj)
    message_box(dialog).fill("Hello {{firstName}}, your documents are approved.")
    send_button(dialog).click()
    expect(
        toasts(page, "status").filter(has_text="Sent to Zoë Müller's cabinet; webhook queued.")
    ).to_be_visible()

    chip = webhook_chip(sent_items(dialog).first)
    expect(chip).to_contain_text(re.compile(r"Webhook:\s+Delivered \d\d:\d\d:\d\d"))
    assert page.evaluate("window.__samePage") is True, "the page reloaded"
    screenshot(page, "panel-delivered")

    [message] = stored(client_obj)
    [delivery] = Delivery.objects.filter(subject_id=message.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempt_count == 1
    expect(chip).to_contain_text(f"Delivered {hhmmss(delivery.delivered_at)}")
    expect(dialog.get_by_role("button", name="Retry now")).to_have_count(0)

    [request] = receiver.wait_for(1)
    assert request.event is not None, "the signature did not verify"
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert request.headers["content-type"].startswith("application/json")
    assert request.headers["user-agent"] == "Clientdesk-Webhooks/1"
    body = request.json
    assert request.event == body
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "message.sent"
    assert ISO_Z.match(body["timestamp"])
    assert body["data"] == {
        "message": {
            "id": str(message.id),
            "body": "Hello Zoë, your documents are approved.",
            "created_at": body["data"]["message"]["created_at"],
            "sender": {"id": str(agent_user.pk), "name": "Alex Agent"},
            "category": "service",
            "broadcast_id": None,
            "attachments": [],
            "document_requests": [],
        },
        "client": {"id": str(client_obj.id), "external_id": client_obj.external_id},
    }
    assert ISO_Z.match(body["data"]["message"]["created_at"])

    # Once nothing is open the panel stops polling.
    expect(dialog.locator("#sent-list")).not_to_have_attribute("hx-trigger", re.compile("every"))


# --- Retrying, failed, Retry now ----------------------------------------------------------


def delivery_log(delivery: Delivery) -> str:
    """The attempts so far, for failure messages: when each ran and what it got."""
    delivery.refresh_from_db()
    attempts = ", ".join(
        f"#{a.number} {a.started_at:%H:%M:%S.%f}"[:-3] + f" {a.status_code or a.error}"
        for a in delivery.attempts.order_by("number")
    )
    return (
        f"status {delivery.status}, {delivery.attempt_count} attempts, next "
        f"{delivery.next_attempt_at and delivery.next_attempt_at.time()}; attempts: {attempts}"
    )


def bring_forward(delivery: Delivery, timeout: float = 30.0) -> None:
    """Make the next scheduled attempt due now (the service behind "Retry now" does that for a
    queued delivery), rather than wait seconds for the schedule; waits out an attempt in
    flight."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            delivery_retry_now(delivery_id=delivery.pk, actor=None)
            return
        except ValidationFailed:  # being attempted right now
            assert time.monotonic() < deadline, delivery_log(delivery)
            time.sleep(0.05)


def test_refused_then_gone_shows_retrying_then_a_failure_alert_and_retry_now_delivers(
    page: Page,
    login: Login,
    agent_user: User,
    administrator: User,
    client_obj: Client,
    receiver: Receiver,
    worker: Worker,
    screenshot: Screenshot,
) -> None:
    receiver.stop()  # nothing listens on the port now: connections are refused
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    message_box(dialog).fill("Your appointment is confirmed.")
    send_button(dialog).click()
    expect(
        toasts(page, "status").filter(has_text="Sent to Zoë Müller's cabinet; webhook queued.")
    ).to_be_visible()

    chip = webhook_chip(sent_items(dialog).first)
    expect(chip).to_contain_text(
        re.compile(r"Webhook:\s+Retrying at \d\d:\d\d:\d\d — connection refused")
    )
    screenshot(page, "panel-retrying")
    [message] = stored(client_obj)
    delivery = Delivery.objects.get(subject_id=message.id)
    assert delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    assert delivery.last_error == "connection refused"
    expect(dialog.get_by_role("button", name="Retry now")).to_have_count(0)
    expect(toasts(page, "alert")).to_have_count(0)

    # The receiver comes back on the same port, answering 410 Gone: the delivery fails at its
    # next attempt, an alert is raised while the panel is open, and "Retry now" is offered.
    receiver.status = 410
    receiver.start()
    bring_forward(delivery)
    failed = toasts(page, "alert")
    try:
        expect(failed.locator("span")).to_have_text(
            "Webhook delivery to Zoë Müller failed: HTTP 410 Gone: the endpoint asked to stop, "
            "so it is now disabled",
            timeout=30_000,
        )
    except AssertionError as error:
        raise AssertionError(f"no failure alert: {delivery_log(delivery)}") from error
    expect(chip).to_contain_text(re.compile(r"Webhook:\s+Failed — HTTP 410"))
    retry = dialog.get_by_role("button", name="Retry now")
    expect(retry).to_be_visible()
    screenshot(page, "panel-failed")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    gone_attempts = delivery.attempt_count
    assert [r.event is not None for r in receiver.received] == [True]
    endpoint = OutgoingEndpoint.objects.get(pk=1)
    assert not endpoint.enabled
    assert "410 Gone" in endpoint.disabled_reason

    # The administrator re-enables the endpoint, which now accepts; "Retry now" delivers.
    receiver.status = 200
    endpoint_configure(user=administrator, url=receiver.url, enabled=True)
    retry.click()
    expect(chip).to_contain_text(re.compile(r"Webhook:\s+Delivered \d\d:\d\d:\d\d"))
    expect(dialog.get_by_role("button", name="Retry now")).to_have_count(0)
    # The failure's alert goes once the delivery recovers, and is not announced again.
    expect(toasts(page, "alert")).to_have_count(0)
    screenshot(page, "panel-delivered-after-retry")

    first, second = receiver.wait_for(2)
    assert second.event is not None, "the signature did not verify"
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.webhook_id
    assert second.json["data"]["message"]["id"] == str(message.id)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempt_count == gone_attempts + 1
    codes = [a.status_code for a in delivery.attempts.order_by("number")]
    assert codes == [None] * (gone_attempts - 1) + [410, 200]


def test_a_dead_endpoint_exhausts_the_shortened_schedule_then_retry_now_delivers(
    page: Page,
    login: Login,
    agent_user: User,
    client_obj: Client,
    receiver: Receiver,
    worker: Worker,
    settings: Any,
) -> None:
    # The whole schedule of eight attempts (about 27.6 hours) shrunk to about two seconds.
    settings.DELIVERY_RETRY_SCALE = 2e-5
    receiver.stop()
    login(agent_user)
    dialog = open_send_panel(page, client_obj)
    message_box(dialog).fill("Your appointment is confirmed.")
    send_button(dialog).click()
    expect(
        toasts(page, "status").filter(has_text="Sent to Zoë Müller's cabinet; webhook queued.")
    ).to_be_visible()
    [message] = stored(client_obj)
    delivery = Delivery.objects.get(subject_id=message.id)

    # At most 2.4 s of schedule, plus the panel's 2 s poll, plus a margin.
    chip = webhook_chip(sent_items(dialog).first)
    try:
        expect(chip).to_contain_text(
            re.compile(r"Webhook:\s+Failed — connection refused"), timeout=30_000
        )
    except AssertionError as error:
        raise AssertionError(
            f"the retries did not come when due: {delivery_log(delivery)}"
        ) from error
    expect(toasts(page, "alert").locator("span")).to_have_text(
        "Webhook delivery to Zoë Müller failed: connection refused"
    )
    delivery.refresh_from_db()
    assert delivery.attempt_count == 8
    assert receiver.received == []

    # The receiver is back on the same port: "Retry now" starts the schedule again.
    receiver.start()
    dialog.get_by_role("button", name="Retry now").click()
    expect(chip).to_contain_text(re.compile(r"Webhook:\s+Delivered \d\d:\d\d:\d\d"))
    [request] = receiver.wait_for(1)
    assert request.event is not None
    assert request.headers["webhook-id"] == delivery.webhook_id


# --- Integrations page ----------------------------------------------------------------------


def test_administrator_saves_the_endpoint_and_sends_a_test_event(
    page: Page,
    login: Login,
    administrator: User,
    receiver: Receiver,
    private_urls: None,
    screenshot: Screenshot,
) -> None:
    login(administrator)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Send test event")).to_have_count(0)

    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_label("Enabled", exact=True).check()
    page.get_by_role("button", name="Save").click()
    expect(toasts(page, "status")).to_contain_text("Integration settings saved.")
    expect(page.get_by_label("Endpoint URL")).to_have_value(receiver.url)
    expect(page.get_by_label("Enabled", exact=True)).to_be_checked()

    # The secret is shown once; the receiver verifies with exactly what the page showed.
    secret = page.get_by_test_id("signing-secret").text_content() or ""
    assert secret.startswith("whsec_")
    assert OutgoingEndpoint.objects.get(pk=1).secret == secret
    receiver.secret = secret

    page.get_by_role("button", name="Send test event").click()
    result = page.locator("#test-result")
    expect(result.get_by_role("status")).to_contain_text(
        re.compile(r"Delivered\s+· HTTP 200 · \d+ ms")
    )
    [request] = receiver.wait_for(1)
    assert request.event is not None, "the test event did not verify with the shown secret"
    assert request.json["type"] == "test.ping"
    assert request.json["data"] == {"sent_by": "Ada Admin"}
    # The response excerpt is what the receiver answered.
    excerpt = json.dumps({"received": request.headers["webhook-id"], "verified": True})
    expect(result.locator("pre")).to_have_text(excerpt)
    screenshot(page, "integrations-test-event")

    # A failing endpoint is reported in words, as an alert.
    receiver.stop()
    page.get_by_role("button", name="Send test event").click()
    expect(result.get_by_role("alert")).to_contain_text("Not delivered · no response")
    expect(result.get_by_role("alert")).to_contain_text("connection refused")
