"""`GET /metrics`: every tier of the Procfile serves it, granian's web workers add up, the
database's values are read when scraped, the token is required when set, and no path an
attacker makes up becomes a label value."""

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client as DjangoClient
from django.utils import timezone

from clientdesk.accounts.services import api_token_create
from clientdesk.audit.services import audit_checkpoint_create
from clientdesk.core.metrics import HTTP_METHODS, metrics_serve, metrics_text
from clientdesk.delivery.models import Delivery, DeliveryStatus
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.outreach.models import Broadcast, BroadcastRecipient, BroadcastStatus
from tests.core.observed import Tier, parse, scrape, tier, value, wait_until
from tests.routes import site_routes
from tests.sending import send_text
from tests.servers import SSEReader

REQUESTS = "clientdesk_http_requests_total"


class _Hooks(BaseHTTPRequestHandler):
    received: list[bytes] = []  # one list per test, set by the fixture

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[tuple[str, list[bytes]]]:
    """A webhook receiver on loopback that answers 200; yields its URL and what it received."""
    received: list[bytes] = []
    handler = type("Hooks", (_Hooks,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", received
    server.shutdown()
    server.server_close()


def _web_workers_counted(web: Tier) -> int:
    """How many of granian's worker processes have counted a request: each writes its own
    counter file in the start's directory, named after the server's main process."""
    directories = list((Path(django_settings.VAR_DIR) / "metrics").glob(f"*-{web.process.pid}-*"))
    assert len(directories) == 1, directories
    return len(list(directories[0].glob("counter_*.db")))


@pytest.mark.django_db(transaction=True)
def test_every_tier_serves_metrics_and_granian_workers_add_up(
    tmp_path, make_user, client_obj, settings, hooks
):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    url, received = hooks
    administrator = make_user("Administrator")
    endpoint_configure(user=administrator, url=url, enabled=True)
    agent = make_user("Agent")
    _, token = api_token_create(user=agent)
    auth = {"Authorization": f"Bearer {token}"}

    with (
        tier("web", tmp_path, WEB_CONCURRENCY="2") as web,
        tier("events", tmp_path) as events,
        tier("worker", tmp_path) as worker,
    ):
        # New connections until both web workers have answered some (the kernel spreads them).
        livez = 0
        while _web_workers_counted(web) < 2:
            assert livez < 2000, "one web worker answered every request"
            assert httpx.get(f"{web.url}/livez", timeout=30).status_code == 200
            livez += 1
        for n in range(3):
            sent = httpx.post(
                f"{web.url}/api/v1/clients/{client_obj.id}/messages",
                json={"body": f"Metrics {n}"},
                headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
                timeout=30,
            )
            assert sent.status_code == 201, sent.text
        # Whichever worker answers the scrape, it reports what both counted.
        for _ in range(6):
            series = scrape(web.url)
            assert value(series, REQUESTS, route="/livez", method="GET", status="200") == livez
            route = "/api/v1/clients/<id:client_id>/messages"
            assert value(series, REQUESTS, route=route, method="POST", status="201") == 3
            assert value(series, "clientdesk_messages_sent_total", via="api") == 3
            assert (
                value(
                    series,
                    "clientdesk_http_request_duration_seconds_count",
                    route=route,
                    method="POST",
                )
                == 3
            )

        # The worker delivers them, counts each outcome and serves its own /metrics.
        wait_until(lambda: len(received) >= 3, what="three webhooks")
        # The worker counts what it delivered: these and the ledger's checkpoint webhook.
        wait_until(
            lambda: (
                value(
                    scrape(worker.url),
                    "clientdesk_deliveries_total",
                    channel="webhook",
                    outcome="delivered",
                )
                == len(received)
            ),
            what="the worker's count of deliveries",
        )
        series = scrape(worker.url)
        assert value(series, "clientdesk_worker_last_seen_seconds") < 60
        assert value(series, "clientdesk_delivery_queue_depth", channel="webhook") == 0
        assert value(series, "clientdesk_delivery_oldest_pending_seconds", channel="webhook") == 0
        assert ("clientdesk_broadcast_recipients_pending", frozenset()) in series
        assert ("clientdesk_audit_last_checkpoint_age_seconds", frozenset()) in series

        # The events server counts its open streams, and forgets one as it closes.
        stream = SSEReader(f"{events.url}/api/v1/events", headers=auth)
        try:
            assert stream.status == 200
            wait_until(
                lambda: (
                    value(scrape(events.url), "clientdesk_event_streams_open", kind="staff") == 1
                ),
                what="one open staff stream",
            )
        finally:
            stream.close()
        wait_until(
            lambda: value(scrape(events.url), "clientdesk_event_streams_open", kind="staff") == 0,
            what="no open staff stream",
        )
        series = scrape(events.url)
        assert value(series, REQUESTS, route="/api/v1/events", method="GET", status="200") == 1
        # The web process saw no stream and no delivery: each tier reports its own counts.
        assert value(scrape(web.url), "clientdesk_event_streams_open", kind="staff") == 0


@pytest.mark.django_db
def test_the_token_is_required_when_set_by_web_and_worker_alike(settings):
    settings.CLIENTDESK_METRICS_TOKEN = "metrics-token-1"
    browser = DjangoClient()
    assert browser.get("/metrics").status_code == 401
    for header in ("Bearer wrong", "Bearer metrics-token-", "Basic metrics-token-1", "Bearer "):
        assert browser.get("/metrics", HTTP_AUTHORIZATION=header).status_code == 401
    answer = browser.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-1")
    assert answer.status_code == 200
    assert b"clientdesk_http_requests_total" in answer.content

    port = metrics_serve(host="127.0.0.1", port=0)
    assert port is not None
    worker = f"http://127.0.0.1:{port}/metrics"
    assert httpx.get(worker, timeout=30).status_code == 401
    assert (
        httpx.get(worker, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
    )
    good = httpx.get(worker, headers={"Authorization": "Bearer metrics-token-1"}, timeout=30)
    assert good.status_code == 200
    assert "clientdesk_delivery_queue_depth" in good.text

    settings.CLIENTDESK_METRICS_TOKEN = ""
    assert browser.get("/metrics").status_code == 200


HOSTILE_PATHS = [
    "/" + "a" * 5000,
    "/%00",
    "/%ff%fe",
    "/clients/../../../etc/passwd",
    "/api/v1/clients/" + str(uuid.uuid4()),
    "/api/v1/clients/not-a-uuid/messages",
    "/api/v1/nothing/here",
    "/portal/api/v1/" + "x/" * 300,
    "/<script>alert(1)</script>",
    "/ünïcödé/😀",
    "/static/../../settings.py",
    "/static/nothing-" + uuid.uuid4().hex + ".js",
    "/admin/" + uuid.uuid4().hex,
    "/metrics/" + uuid.uuid4().hex,
]


@pytest.mark.django_db
def test_labels_stay_bounded_whatever_paths_and_methods_arrive():
    browser = DjangoClient()
    # Other tests in this process may have counted any real route already.
    before = {
        dict(labels)["route"] for name, labels in parse(metrics_text().decode()) if name == REQUESTS
    }
    for n in range(40):
        for path in HOSTILE_PATHS:
            browser.get(f"{path}{n}" if n % 2 else path)
        browser.generic(f"M{n}ETHOD", "/clients/")
        browser.generic("BREW", f"/{uuid.uuid4().hex}")
    series = parse(metrics_text().decode())
    routes = {dict(labels)["route"] for name, labels in series if name == REQUESTS}
    methods = {dict(labels)["method"] for name, labels in series if name == REQUESTS}
    patterns = {route for route, _ in site_routes()}
    made_up = {
        route
        for route in routes
        if route not in patterns | {"unmatched", "static"} and not route.startswith("/admin/")
    }
    assert not made_up
    assert methods <= HTTP_METHODS | {"other"}
    assert "other" in methods
    # 1,200 requests to made-up paths and methods add a handful of series, not hundreds.
    assert len(routes - before) < 15, routes - before


@pytest.mark.django_db
def test_the_database_values_are_read_when_scraped(make_user, client_obj, settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    administrator = make_user("Administrator")
    endpoint_configure(user=administrator, url="http://127.0.0.1:9/hooks", enabled=True)
    before = parse(metrics_text().decode())
    assert value(before, "clientdesk_delivery_queue_depth", channel="webhook") == 0
    assert value(before, "clientdesk_broadcast_recipients_pending") == 0

    send_text(administrator, client_obj, "One")
    send_text(administrator, client_obj, "Two")
    # One of them has waited ten minutes past its due time.
    waiting = Delivery.objects.filter(status=DeliveryStatus.PENDING).order_by("created_at")
    Delivery.objects.filter(pk=waiting[0].pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=10)
    )
    broadcast = Broadcast.objects.create(
        created_by=administrator,
        created_at=timezone.now(),
        status=BroadcastStatus.SENDING,
        category="outreach",
        audience={},
        body="Hello",
        recipients=1,
        idempotency_key="b-1",
        fingerprint="0" * 64,
    )
    BroadcastRecipient.objects.create(
        broadcast=broadcast, client=client_obj, due_at=timezone.now() + timedelta(hours=1)
    )
    audit_checkpoint_create()

    series = parse(metrics_text().decode())
    # The two messages and the checkpoint's `audit.checkpoint` webhook.
    assert value(series, "clientdesk_delivery_queue_depth", channel="webhook") == 3
    assert value(series, "clientdesk_delivery_queue_depth", channel="email") == 0
    oldest = value(series, "clientdesk_delivery_oldest_pending_seconds", channel="webhook")
    assert 600 <= oldest < 900
    assert value(series, "clientdesk_broadcast_recipients_pending") == 1
    assert value(series, "clientdesk_audit_last_checkpoint_age_seconds") < 60
    assert value(series, "clientdesk_worker_last_seen_seconds") == float("inf")
