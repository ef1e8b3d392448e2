"""A stop is a stop: told to stop, `make run` and the Procfile's tiers end their open event
streams at once (clients resume elsewhere by Last-Event-ID) and every process exits within 10 s;
a stopping worker releases the deliveries it could not finish, and another takes them at once."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.utils import timezone

from clientdesk.accounts.services import api_token_create
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery, DeliveryStatus
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.messaging.services.sending import message_send
from clientdesk.portal.services import portal_link_create, portal_link_redeem
from tests.servers import SSEReader, child_env, free_port, procfile_process, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
STOP_LIMIT = 10.0


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent's wait() has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _family(pid: int) -> list[int]:
    """`pid` and every process below it, now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    """The processes of `pids` still running after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return []
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def _streams(base: str, staff_token: str, portal_token: str) -> list[SSEReader]:
    readers = [
        SSEReader(f"{base}/api/v1/events", headers={"Authorization": f"Bearer {staff_token}"}),
        SSEReader(
            f"{base}/portal/api/v1/events", headers={"Authorization": f"Bearer {portal_token}"}
        ),
    ]
    for reader in readers:
        assert reader.status == 200, (reader.url, reader.status, reader.body)
        assert not reader.ended.is_set()
    return readers


# --- make run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM to make", "Ctrl-C"])
def test_make_run_with_streams_open_stops_within_10_s(how: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "MAKEFLAGS", "MAKELEVEL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(PORT=str(port), CLIENTDESK_VAR_DIR=str(tmp_path / "var"))
    log = tmp_path / "make-run.log"
    base = f"http://127.0.0.1:{port}"

    def ctrl_c_reaches_us() -> None:
        # What a terminal's Ctrl-C does; a suite started in the background passes it ignored.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=ctrl_c_reaches_us,
        )
    readers: list[SSEReader] = []
    try:
        wait_until_answering(f"{base}/healthz", make)
        staff_token = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "manage.py", "create_api_token", "manager"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
        code = re.search(r"/portal/#code=(\S+)", log.read_text())
        assert code, log.read_text()
        session = httpx.post(f"{base}/portal/api/v1/session", json={"code": code[1]}, timeout=60)
        assert session.status_code in (200, 201), session.text
        readers = _streams(base, staff_token, session.json()["token"])
        family = _family(make.pid)
        assert len(family) >= 5, family  # make, its shell, bash, the worker, granian (and its own)

        if how == "Ctrl-C":
            os.killpg(make.pid, signal.SIGINT)
        else:
            os.kill(make.pid, signal.SIGTERM)
        started = time.monotonic()
        for reader in readers:
            assert reader.ended.wait(STOP_LIMIT), f"{reader.url} still open"
        left = _gone_within(family, STOP_LIMIT - (time.monotonic() - started))
        assert left == [], f"still running {STOP_LIMIT} s after {how}: {left}"
        make.wait(5)
    finally:
        for reader in readers:
            reader.close()
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    printed = log.read_text()
    assert "Traceback" not in printed, printed
    assert "killed." not in printed, printed  # make run's SIGKILL after 10 s


# --- the Procfile's tiers ----------------------------------------------------------------------


@pytest.fixture
def tokens(make_user: Any, client_obj: Any) -> tuple[str, str]:
    manager = make_user("Manager")
    _, staff_token = api_token_create(user=manager, name="stop test")
    portal_token = portal_link_redeem(code=portal_link_create(client=client_obj)).token
    return staff_token, portal_token


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_events_tier_with_streams_open_stops_within_10_s(
    sig: int, tokens: tuple[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "events.log"
    with procfile_process("events", log) as (url, pid):
        readers = _streams(url, *tokens)
        family = _family(pid)
        assert len(family) >= 2, family  # granian and its worker process
        os.kill(pid, sig)
        started = time.monotonic()
        for reader in readers:
            assert reader.ended.wait(STOP_LIMIT), f"{reader.url} still open"
        left = _gone_within(family, STOP_LIMIT - (time.monotonic() - started))
        assert left == [], f"still running {STOP_LIMIT} s after the signal: {left}"
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.django_db(transaction=True)
def test_the_web_tier_with_a_connection_open_stops_within_10_s(tmp_path: Path) -> None:
    with (
        procfile_process("web", tmp_path / "web.log") as (url, pid),
        httpx.Client(base_url=url, timeout=30) as held,  # keeps its connection open
    ):
        assert held.get("/livez").status_code == 200
        family = _family(pid)
        os.kill(pid, signal.SIGTERM)
        assert _gone_within(family, STOP_LIMIT) == []


# --- the worker --------------------------------------------------------------------------------


class StuckReceiver:
    """A webhook receiver on loopback that holds every request until `release` is set."""

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.arrived.append(self.headers.get("webhook-id", ""))
                receiver.release.wait(60)
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/clientdesk"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stuck_receiver() -> Iterator[StuckReceiver]:
    receiver = StuckReceiver()
    yield receiver
    receiver.close()


def _worker(log: Path) -> subprocess.Popen[bytes]:
    env = child_env(
        # A lease far longer than the test: only a release lets another worker take over.
        CLIENTDESK_LEASE_SECONDS="600",
        CLIENTDESK_RETRY_SCALE="0",
        CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1",
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_worker", "--concurrency=4"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.mark.django_db(transaction=True)
def test_a_stopped_worker_releases_its_claimed_deliveries(
    stuck_receiver: StuckReceiver, make_user: Any, client_obj: Any, tmp_path: Path, settings: Any
) -> None:
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    endpoint_configure(user=make_user("Administrator"), url=stuck_receiver.url, enabled=True)
    agent = make_user("Agent")
    for i in range(3):
        message_send(
            sender=agent,
            client_id=client_obj.id,
            body=f"Held {i}",
            idempotency_key=str(uuid.uuid4()),
            meta=RequestMeta(),
        )
    messages = Delivery.objects.filter(payload__type="message.sent")
    log = tmp_path / "worker.log"
    first = _worker(log)
    try:
        _wait(lambda: len(stuck_receiver.arrived) >= 3, 60, "the first worker's attempts")
        held_by = set(messages.values_list("leased_by", flat=True))
        assert len(held_by) == 1 and "" not in held_by, held_by
        first.send_signal(signal.SIGTERM)
        first.wait(STOP_LIMIT)  # its attempts hang: it releases them and exits
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    now = timezone.now()
    for delivery in messages:
        assert delivery.status == DeliveryStatus.SENDING
        assert delivery.lease_until is not None and delivery.lease_until <= now
    released = re.search(r"released (\d+) deliveries", log.read_text())
    assert released and int(released[1]) >= 3, log.read_text()  # (and the ledger's, if due)

    stuck_receiver.release.set()
    second = _worker(log)
    try:
        # With a 600 s lease, only the release lets it take them this soon.
        _wait(
            lambda: messages.filter(status=DeliveryStatus.DELIVERED).count() == 3,
            60,
            "the second worker's deliveries",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(STOP_LIMIT)
    for delivery in messages:
        errors = list(delivery.attempts.order_by("number").values_list("error", flat=True))
        assert "stopped during the attempt" in errors[0], errors
