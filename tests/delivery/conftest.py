"""A real webhook receiver on loopback that verifies every request with `standardwebhooks`,
and helpers to point Clientdesk at it."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from clientdesk.delivery.models import OutgoingEndpoint


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: list[str]  # the secrets that verified it

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers with `respond(request) -> (status, headers, body)`; records what arrived."""

    url: str = ""
    secrets: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    respond: Callable[[Received], tuple[int, dict[str, str], bytes]] = lambda r: (200, {}, b"ok")
    active: dict[str, int] = field(default_factory=dict)
    max_parallel_per_id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return self.received
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.received)}")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = []
            for secret in receiver.secrets:
                try:
                    Webhook(secret).verify(body, headers)
                    verified.append(secret)
                except Exception:  # noqa: S110 - "did not verify" is the recorded fact
                    pass
            item = Received(headers=headers, body=body, verified=verified)
            webhook_id = headers.get("webhook-id", "")
            with receiver.lock:
                receiver.active[webhook_id] = receiver.active.get(webhook_id, 0) + 1
                receiver.max_parallel_per_id = max(
                    receiver.max_parallel_per_id, receiver.active[webhook_id]
                )
            try:
                status, extra, payload = receiver.respond(item)
            finally:
                with receiver.lock:
                    receiver.active[webhook_id] -= 1
                    receiver.received.append(item)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(r))
    server.daemon_threads = True
    r.url = f"http://127.0.0.1:{server.server_port}/hooks/clientdesk"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield r
    server.shutdown()
    server.server_close()


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    settings.DELIVERY_RETRY_SCALE = 0.0  # retries fall due at once; tests step the worker


@pytest.fixture
def administrator(make_user: Callable[..., Any]) -> Any:
    return make_user("Administrator", first_name="Ada", last_name="Admin")


@pytest.fixture
def endpoint(receiver: Receiver, administrator: Any, allow_loopback: None) -> OutgoingEndpoint:
    from clientdesk.delivery.services.endpoints import endpoint_configure

    configured, _ = endpoint_configure(user=administrator, url=receiver.url, enabled=True)
    receiver.secrets = [configured.secret]
    return configured
