"""The Procfile's web, events and worker processes on a PostgreSQL cluster of the test's own,
which is restarted (`pg_ctl restart -m immediate`) and has every connection terminated
(`pg_terminate_backend`) while sends flow: no request answers 500, every accepted send is
delivered exactly once by webhook-id to a real receiver, every stream event is seen once, and the
processes are still running at the end. Never the shared server: a cluster in a temporary
directory on a free port, removed afterwards. Runs in both modes of `make test`."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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

from tests.core.test_stop import _family
from tests.servers import SSEReader, free_port, procfile_process

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl").resolve().parent

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None,
    reason="needs PostgreSQL's initdb and pg_ctl, and runuser",
)


def _as_postgres(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
    return subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)


class Cluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="clientdesk-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        _as_postgres(
            str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "clientdesk",
        )  # fmt: skip
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/clientdesk"

    def _pg_ctl(self, *args: str) -> None:
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
            "-w", "-t", "60", *args,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "start")

    def restart_immediately(self) -> None:
        self._pg_ctl("-m", "immediate", "stop")
        self.start()

    def terminate_every_connection(self) -> int:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as own:
            rows = own.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = 'clientdesk'"
            ).fetchall()
        return len(rows)

    def remove(self) -> None:
        try:
            self._pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Receiver:
    """A webhook endpoint on loopback: which webhook-id carried which message, how often."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (webhook-id, message id)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                if body.get("type") == "message.sent":
                    with receiver.lock:
                        receiver.seen.append(
                            (self.headers["webhook-id"], body["data"]["message"]["id"])
                        )
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
        self.server.shutdown()
        self.server.server_close()


SEED = """
import json
from django.contrib.auth.models import Group
from clientdesk.accounts.models import User
from clientdesk.accounts.services import api_token_create
from clientdesk.clients.services import client_create
from clientdesk.delivery.services.endpoints import endpoint_configure
admin = User.objects.create_user(username="admin", password="x" * 20)
admin.groups.add(Group.objects.get(name="Administrator"))
endpoint_configure(user=admin, url={url!r}, enabled=True)
_, token = api_token_create(user=admin, name="faults")
client = client_create(external_id="F-1", first_name="Fay", last_name="Fault")
print(json.dumps({{"token": token, "client": str(client.id)}}))
"""


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        yield made
    finally:
        made.remove()


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class Sender(threading.Thread):
    """Sends one message after another through the API, each retried under its own
    Idempotency-Key until accepted; notes every status it saw."""

    def __init__(self, url: str, token: str, client_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.client_id = url, token, client_id
        self.statuses: Counter[int] = Counter()
        # A 503 that is not problem+json with Retry-After (the database was away).
        self.unhelpful: list[str] = []
        self.accepted: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, timeout=30, headers=auth) as http:
            n = 0
            while not self.stopping.is_set():
                n += 1
                key = str(uuid.uuid4())
                while True:
                    try:
                        response = http.post(
                            f"/api/v1/clients/{self.client_id}/messages",
                            json={"body": f"Fault {n}"},
                            headers={
                                "Authorization": f"Bearer {self.token}",
                                "Idempotency-Key": key,
                            },
                        )
                    except httpx.TransportError:
                        time.sleep(0.2)
                        continue
                    self.statuses[response.status_code] += 1
                    if response.status_code == 503 and not (
                        response.headers.get("content-type") == "application/problem+json"
                        and response.headers.get("retry-after", "").isdigit()
                    ):
                        self.unhelpful.append(f"{response.headers} {response.text[:300]}")
                    if response.status_code in (200, 201):
                        self.accepted.append(response.json()["id"])
                        break
                    time.sleep(0.2)
                time.sleep(0.05)


class ResumingReader(threading.Thread):
    """The staff stream, reopened with Last-Event-ID whenever it ends, as a browser does."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.statuses: Counter[int] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        last: str | None = None
        while not self.stopping.is_set():
            headers = {"Authorization": f"Bearer {self.token}"}
            if last is not None:
                headers["Last-Event-ID"] = last
            try:
                reader = SSEReader(f"{self.url}/api/v1/events", headers=headers)
            except (OSError, AssertionError):
                time.sleep(0.3)
                continue
            self.statuses[reader.status or 0] += 1
            while not reader.ended.is_set() and not self.stopping.is_set():
                try:
                    event = reader.events.get(timeout=0.2)
                except Exception:  # noqa: S112 - nothing arrived yet
                    continue
                self.events.append((event.id or "", event.event, event.json))
                last = event.id
            while not reader.events.empty():
                event = reader.events.get()
                self.events.append((event.id or "", event.event, event.json))
                last = event.id
            reader.close()
            if not any(line.startswith("id: ") for line in reader.raw) and last is None:
                time.sleep(0.3)
                continue
            if last is None:
                last = next(line[4:] for line in reader.raw if line.startswith("id: "))
            time.sleep(0.3)


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_worker", "--concurrency=4"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_a_database_restart_and_dropped_connections_lose_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    receiver = Receiver()
    env = {
        **os.environ,
        "DATABASE_URL": cluster.url,
        "CLIENTDESK_VAR_DIR": str(tmp_path / "var"),
        "CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS": "1",
        "CLIENTDESK_REQUIRE_2FA_FOR": "",
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    env.pop("REDIS_URL", None)
    _manage(env, "migrate", "--noinput", "-v0")
    seeded = json.loads(_manage(env, "shell", "-c", SEED.format(url=receiver.url)).splitlines()[-1])
    workers = [_worker(env, tmp_path / "worker.log") for _ in range(2)]
    process_env = {k: env[k] for k in ("DATABASE_URL", "CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS")}
    process_env["CLIENTDESK_REQUIRE_2FA_FOR"] = ""
    try:
        with contextlib.ExitStack() as stack:
            web, _ = stack.enter_context(
                procfile_process("web", tmp_path / "web.log", **process_env)
            )
            events, events_pid = stack.enter_context(
                procfile_process("events", tmp_path / "events.log", **process_env)
            )
            reader = ResumingReader(events, seeded["token"])
            reader.start()
            sender = Sender(web, seeded["token"], seeded["client"])
            sender.start()
            _wait(lambda: len(sender.accepted) >= 10, 120, "the first sends")
            cluster.restart_immediately()
            _wait(lambda: len(sender.accepted) >= 20, 120, "sends after the restart")
            assert cluster.terminate_every_connection() > 0
            _wait(lambda: len(sender.accepted) >= 30, 120, "sends after the terminations")
            # The events server dies with its stream open; the reader resumes on another.
            for pid in _family(events_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            other, _ = stack.enter_context(
                procfile_process("events", tmp_path / "events-2.log", **process_env)
            )
            reader.url = other
            _wait(lambda: len(sender.accepted) >= 40, 120, "sends after the events server died")
            sender.stopping.set()
            sender.join(60)
            accepted = set(sender.accepted)

            def delivered() -> bool:
                return {m for _, m in receiver.seen} >= accepted

            _wait(delivered, 60, "every accepted send delivered")

            def streamed() -> bool:
                created = {e["id"] for _, t, e in reader.events if t == "message.created"}
                return created >= accepted

            _wait(streamed, 60, "every accepted send on the stream")
            reader.stopping.set()
            reader.join(30)
        for worker in workers:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
        receiver.close()

    assert 500 not in sender.statuses, sender.statuses
    print(f"send statuses {dict(sender.statuses)}")
    assert sender.unhelpful == [], sender.unhelpful[:3]
    assert 500 not in reader.statuses, reader.statuses
    assert len(sender.accepted) == len(accepted)  # one message per send
    per_id = Counter(webhook_id for webhook_id, _ in receiver.seen)
    assert set(per_id.values()) == {1}, [i for i, n in per_id.items() if n > 1]
    per_message = Counter(m for _, m in receiver.seen)
    assert {m: n for m, n in per_message.items() if m in accepted and n != 1} == {}
    ids = Counter(event_id for event_id, _, _ in reader.events)
    assert {i: n for i, n in ids.items() if n > 1} == {}, "an event was sent twice"
