"""Scaling by adding processes: the Procfile's tiers twice over (2 web, 2 events, 2 workers)
behind deploy/nginx.conf, on the test database (PostgreSQL, or a SQLite file: one host holds
the same topology), with a real webhook receiver on loopback.

A send on either web process reaches a stream on either events process within a second; then,
while sends flow through nginx, one web process, one worker and one events process are each
SIGKILLed (the whole process group, as when a container or a host is lost). Nothing accepted is
lost: every accepted send is one message, delivered (by webhook-id, exactly once after the
receiver's deduplication), and every stream, resumed through nginx by `Last-Event-ID`, sees each
message once.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from clientdesk.accounts.services import api_token_create
from clientdesk.delivery.models import Channel, Delivery, DeliveryStatus
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.messaging.models import Message
from tests.core.proxies import nginx_command
from tests.servers import SSEEvent, SSEReader, child_env, free_port, procfile_command

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
SENDS = 60


class Receiver(ThreadingHTTPServer):
    """The business's webhook endpoint: verifies each request, keeps what arrived by webhook-id
    (a receiver deduplicates by it; a redelivery after a worker died is expected)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.secret = ""
        self.arrivals: Counter[str] = Counter()
        self.unverified = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                time.sleep(0.02)  # a real receiver takes a moment: attempts are in flight
                try:
                    Webhook(receiver.secret).verify(body, headers)
                except Exception:  # an unverified request is the recorded fact
                    with receiver.lock:
                        receiver.unverified += 1
                    self.send_response(400)
                else:
                    with receiver.lock:
                        receiver.arrivals[headers["webhook-id"]] += 1
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_port}/hooks/clientdesk"


@contextlib.contextmanager
def _receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


class Tier:
    """One Procfile process in its own process group (granian's main process and its workers,
    or a worker), so a SIGKILL takes all of it, as losing its container would."""

    def __init__(self, name: str, log: Path, env: dict[str, str], port: int | None) -> None:
        self.name, self.log, self.port = name, log, port
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {procfile_command(name.rstrip('12'))}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            if self.port is None:
                if "running" in self.log.read_text():
                    return
            else:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{self.port}/livez", timeout=2).is_success:
                        return
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name} not ready in {timeout} s: {self.log.read_text()[-3000:]}"
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # Nothing of the group may go on serving (granian's workers are its children).
        deadline = time.monotonic() + 20
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(self.process.pid), f"{self.name} left processes behind"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def _topology(tmp: Path) -> Iterator[dict[str, Tier]]:
    env = child_env(
        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        HOST="127.0.0.1",
        WEB_CONCURRENCY="1",
        EVENTS_CONCURRENCY="1",
        WEB_THREADS="8",
        LOG_LEVEL="WARNING",
        CLIENTDESK_BEHIND_PROXY="1",
        CLIENTDESK_LEASE_SECONDS="3",
        CLIENTDESK_RETRY_SCALE="0",
        CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1",
    )
    tiers: dict[str, Tier] = {}
    try:
        for name in ("web1", "web2", "events1", "events2", "worker1", "worker2"):
            port = None if name.startswith("worker") else free_port()
            ports = {"PORT": str(port), "EVENTS_PORT": str(port)} if port else {}
            tiers[name] = Tier(name, tmp / f"{name}.log", {**env, **ports}, port)
        for tier in tiers.values():
            tier.wait_ready()
        yield tiers
    finally:
        for tier in tiers.values():
            if tier.process.poll() is None:
                tier.kill(signal.SIGTERM)


@contextlib.contextmanager
def _nginx(tmp: Path, tiers: dict[str, Tier]) -> Iterator[str]:
    port = free_port()
    command = nginx_command(
        tmp,
        web=[tiers["web1"].port or 0, tiers["web2"].port or 0],
        events=[tiers["events1"].port or 0, tiers["events2"].port or 0],
        port=port,
    )
    with open(tmp / "nginx.log", "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/livez", timeout=2).is_success:
                    break
            assert process.poll() is None and time.monotonic() < deadline, "nginx did not serve"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def _send(http: httpx.Client, client_id: Any, auth: dict[str, str], n: int) -> tuple[str, float]:
    """One send, retried with its key while no web process answers (as an integrator does);
    returns the message id and when the send began."""
    key = str(uuid.uuid4())
    began = time.monotonic()
    deadline = began + 60
    while True:
        try:
            response = http.post(
                f"/api/v1/clients/{client_id}/messages",
                json={"body": f"Scaled {n} {{{{ firstName }}}}"},
                headers={**auth, "Idempotency-Key": key},
            )
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 201:
            return str(response.json()["id"]), began
        assert response is None or response.status_code in {502, 503, 504}, response.text
        assert time.monotonic() < deadline, "no web process accepted the send in 60 s"
        time.sleep(0.1)


class Stream:
    """A staff stream through nginx that resumes by Last-Event-ID when its events process dies."""

    def __init__(self, url: str, auth: dict[str, str]) -> None:
        self.url, self.auth = url, auth
        self.events: list[SSEEvent] = []
        self.resumed = 0
        self.reader = SSEReader(url, headers=auth)

    def drain(self) -> None:
        while not self.reader.events.empty():
            self.events.append(self.reader.events.get())
        if self.reader.ended.is_set():
            while not self.reader.events.empty():
                self.events.append(self.reader.events.get())
            last = next((e.id for e in reversed(self.events) if e.id), None)
            headers = {**self.auth, **({"Last-Event-ID": last} if last else {})}
            self.reader = SSEReader(self.url, headers=headers)
            self.resumed += 1

    def created(self) -> list[str]:
        return [e.json["id"] for e in self.events if e.event == "message.created"]


def test_two_of_each_tier_behind_nginx_lose_nothing_when_any_process_is_killed(
    agent, client_obj, make_user, tmp_path, settings
):
    if shutil.which("nginx") is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (.ci/run installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    auth = {"Authorization": f"Bearer {api_token_create(user=agent)[1]}"}
    with _receiver() as receiver:
        endpoint, _ = endpoint_configure(
            user=make_user("Administrator"), url=receiver.url, enabled=True
        )
        receiver.secret = endpoint.secret
        with _topology(tmp_path) as tiers, _nginx(tmp_path, tiers) as base:
            # 1. A send on either web process reaches a stream on either events process < 1 s.
            direct = [
                SSEReader(f"http://127.0.0.1:{tiers[name].port}/api/v1/events", headers=auth)
                for name in ("events1", "events2")
            ]
            latencies = []
            # The first send on each web process opens its connections: not measured.
            for n, web in enumerate(["web1", "web2"] * 3):
                with httpx.Client(base_url=f"http://127.0.0.1:{tiers[web].port}", timeout=30) as h:
                    message_id, began = _send(h, client_obj.id, auth, n)
                for stream in direct:
                    event = stream.next()
                    while event.event != "message.created":
                        event = stream.next()
                    assert event.json["id"] == message_id
                    if n >= 2:
                        latencies.append(event.received - began)
            for stream in direct:
                stream.close()
            print(f"send -> stream across processes: {[round(x, 3) for x in latencies]} s")
            assert max(latencies) < 1.0, latencies

            # 2. Sends flow through nginx while one process of each tier is SIGKILLed.
            streams = [Stream(f"{base}/api/v1/events", auth) for _ in range(2)]
            accepted: list[str] = []
            failures: list[BaseException] = []

            def sender() -> None:
                try:
                    with httpx.Client(base_url=base, timeout=30) as http:
                        for n in range(SENDS):
                            accepted.append(_send(http, client_obj.id, auth, n)[0])
                except BaseException as error:  # reported by the test thread
                    failures.append(error)

            thread = threading.Thread(target=sender, daemon=True)
            thread.start()
            for victim, after in (("web1", 10), ("worker1", 25), ("events1", 40)):
                deadline = time.monotonic() + 120
                while len(accepted) < after and not failures and time.monotonic() < deadline:
                    for stream in streams:
                        stream.drain()
                    time.sleep(0.05)
                tiers[victim].kill()
            thread.join(180)
            assert not failures, failures
            assert not thread.is_alive() and len(accepted) == SENDS

            # Every accepted send is one message, delivered once by webhook-id.
            assert len(set(accepted)) == SENDS
            assert Message.objects.filter(client=client_obj).count() == SENDS + 6
            sent = Delivery.objects.filter(channel=Channel.WEBHOOK, payload__type="message.sent")
            deadline = time.monotonic() + 120
            while sent.exclude(status=DeliveryStatus.DELIVERED).exists():
                assert time.monotonic() < deadline, Counter(sent.values_list("status", flat=True))
                time.sleep(0.2)
            webhook_ids = set(sent.values_list("webhook_id", flat=True))
            assert len(webhook_ids) == SENDS + 6
            deadline = time.monotonic() + 30
            while not webhook_ids <= set(receiver.arrivals) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert webhook_ids <= set(receiver.arrivals)
            assert receiver.unverified == 0
            repeated = {k: v for k, v in receiver.arrivals.items() if v > 1}
            print(f"webhook-ids received more than once (a killed worker's attempts): {repeated}")

            # Every stream, resumed through nginx, saw each message once.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for stream in streams:
                    stream.drain()
                if all(set(accepted) <= set(stream.created()) for stream in streams):
                    break
                time.sleep(0.1)
            for stream in streams:
                created = stream.created()
                assert set(accepted) <= set(created), set(accepted) - set(created)
                assert len(created) == len(set(created)), Counter(created).most_common(3)
                ids = [e.id for e in stream.events if e.id]
                assert len(ids) == len(set(ids))
                stream.reader.close()
            # The stream on the killed events process ended and resumed on the other one.
            assert sum(stream.resumed for stream in streams) >= 1
