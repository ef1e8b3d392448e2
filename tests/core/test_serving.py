"""The production serving setup, run for real: the Procfile's processes behind nginx and Caddy
with the configs in deploy/, and `make run` on one port.

Routing is proven by taking one process away: with `events` stopped, only the event-stream
paths fail at the proxy (502), and with `web` stopped, only the others do.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from clientdesk.accounts.services import api_token_create
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
EVENT_PATHS = [
    "/api/v1/events",
    "/portal/api/v1/events",
    "/api/v1/events/anything",
    "/api/v1/messages/export",
]
WEB_PATHS = [
    "/healthz",
    "/api/v1/clients",
    "/accounts/login/",
    "/api/v1/eventsx",
    "/api/v1/messages",
    "/api/v1/messages/exportx",
]


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode} before serving {url}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url} in {timeout} s")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def _started(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            _stop(process)


@pytest.fixture
def procfile(tmp_path: Path) -> Iterator[dict]:
    """The Procfile's web, events and worker processes, on free loopback ports."""
    ports = {"web": free_port(), "events": free_port()}
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "DATABASE_URL": _database_url(),
        "CLIENTDESK_VAR_DIR": str(settings.VAR_DIR),
        "HOST": "127.0.0.1",
        "PORT": str(ports["web"]),
        "EVENTS_PORT": str(ports["events"]),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "8",
        "CLIENTDESK_STATIC_FINDERS": "1",
        "LOG_LEVEL": "WARNING",
    }
    with contextlib.ExitStack() as stack:
        processes = {
            name: stack.enter_context(
                _started(["bash", "-c", f"exec {command}"], env, tmp_path / f"{name}.log")
            )
            for name, command in _procfile().items()
        }
        assert set(processes) == {"web", "events", "worker"}
        for name, port in ports.items():
            _wait_http(f"http://127.0.0.1:{port}/healthz", processes[name])
        yield {"ports": ports, "processes": processes, "logs": tmp_path}


def _deployed(config_name: str, ports: dict[str, int]) -> str:
    """A config from deploy/ pointed at this test's processes instead of ports 8000 and 8001."""
    text = (ROOT / "deploy" / config_name).read_text()
    config = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert sum("127.0.0.1:8000" in line for line in config) == 1
    assert sum("127.0.0.1:8001" in line for line in config) == 1
    text = text.replace("127.0.0.1:8000", f"127.0.0.1:{ports['web']}")
    return text.replace("127.0.0.1:8001", f"127.0.0.1:{ports['events']}")


def _nginx(conf: str, port: int, tmp: Path) -> list[str]:
    site = tmp / "site.conf"
    site.write_text(conf.replace("listen 80;", f"listen 127.0.0.1:{port};"))
    main = tmp / "nginx.conf"
    temp = {kind: tmp / kind for kind in ("client", "proxy", "fastcgi", "uwsgi", "scgi")}
    main.write_text(
        f"daemon off; pid {tmp / 'nginx.pid'}; error_log {tmp / 'nginx-error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{ access_log {tmp / 'nginx-access.log'};\n"
        + "".join(f" {kind}_temp_path {path};\n" for kind, path in temp.items()).replace(
            "client_temp_path", "client_body_temp_path"
        )
        + f" include {site}; }}\n"
    )
    return [shutil.which("nginx") or "nginx", "-p", str(tmp), "-c", str(main)]


def _caddy(conf: str, port: int, tmp: Path) -> list[str]:
    conf = conf.replace("clientdesk.example.com {", f"http://127.0.0.1:{port} {{", 1)
    caddyfile = tmp / "Caddyfile"
    caddyfile.write_text("{\n\tadmin off\n\tauto_https off\n}\n" + conf)
    return [
        shutil.which("caddy") or "caddy",
        "run",
        "--adapter",
        "caddyfile",
        "--config",
        str(caddyfile),
    ]


PROXIES = {"nginx": ("nginx.conf", _nginx), "caddy": ("Caddyfile", _caddy)}


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_the_proxy_sends_event_streams_to_events_and_everything_else_to_web(
    proxy, procfile, tmp_path
):
    if shutil.which(proxy) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{proxy} is not installed (.ci/run installs it)")
        pytest.skip(f"{proxy} is not installed (apt-get install {proxy})")
    config_name, build = PROXIES[proxy]
    port = free_port()
    command = build(_deployed(config_name, procfile["ports"]), port, tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    base = f"http://127.0.0.1:{port}"
    with _started(command, env, tmp_path / f"{proxy}.log") as server:
        _wait_http(f"{base}/healthz", server)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/healthz").json()["status"] == "ok"
            for path in EVENT_PATHS + WEB_PATHS:
                assert http.get(path).status_code != 502, path

            _stop(procfile["processes"]["events"])
            for path in EVENT_PATHS:
                assert http.get(path).status_code == 502, f"{path} did not go to events"
            for path in WEB_PATHS:
                assert http.get(path).status_code != 502, f"{path} went to events"
            assert http.get("/portal/api/v1/events?after=1").status_code == 502

            _stop(procfile["processes"]["web"])
            for path in WEB_PATHS:
                assert http.get(path).status_code == 502, f"{path} did not go to web"


def test_a_send_goes_through_the_proxy_to_the_web_process(procfile, agent, client_obj, tmp_path):
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    port = free_port()
    command = _nginx(_deployed("nginx.conf", procfile["ports"]), port, tmp_path)
    with _started(command, dict(os.environ), tmp_path / "nginx.log") as server:
        _wait_http(f"http://127.0.0.1:{port}/healthz", server)
        raw = api_token_create(user=agent)[1]
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/clients/{client_obj.id}/messages",
            json={"body": "Hello {{ firstName }}"},
            headers={"Authorization": f"Bearer {raw}", "Idempotency-Key": str(uuid.uuid4())},
            timeout=20,
        )
        assert response.status_code == 201, response.text
        assert response.json()["body"] == "Hello Zoë"


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_a_send_through_the_proxy_reaches_a_stream_open_through_the_proxy_at_once(
    proxy, procfile, agent, client_obj, tmp_path
):
    """The proxy passes each event on as it comes (no buffering), and the web process's send
    reaches the events process's stream (the announcement crosses processes)."""
    if shutil.which(proxy) is None:
        pytest.skip(f"{proxy} is not installed")
    config_name, build = PROXIES[proxy]
    port = free_port()
    command = build(_deployed(config_name, procfile["ports"]), port, tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    base = f"http://127.0.0.1:{port}"
    token = api_token_create(user=agent)[1]
    auth = {"Authorization": f"Bearer {token}"}
    with _started(command, env, tmp_path / f"{proxy}.log") as server:
        _wait_http(f"{base}/healthz", server)
        with (
            httpx.Client(base_url=base, timeout=20) as http,
            http.stream("GET", "/api/v1/events", headers=auth) as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert any(line == ": connected" for line in lines)  # before any event exists
            sent = http.post(
                f"/api/v1/clients/{client_obj.id}/messages",
                json={"body": "Live {{ firstName }}"},
                headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert sent.status_code == 201, sent.text
            started = time.monotonic()
            for line in lines:
                if line == "event: message.created":
                    break
            assert time.monotonic() - started < 10


def test_200_concurrent_sends_with_one_key_through_the_web_process_make_one_message(
    procfile, agent, client_obj
):
    """The production request path (granian WSGI threads, the connection pool) under a
    200-way race on one Idempotency-Key: one message, 200 identical answers, one replayed 199
    times."""
    import asyncio

    from clientdesk.audit.models import AuditEntry, AuditRecord
    from clientdesk.messaging.models import Message

    token = api_token_create(user=agent)[1]
    url = f"http://127.0.0.1:{procfile['ports']['web']}/api/v1/clients/{client_obj.id}/messages"
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}

    async def race() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            return await asyncio.gather(
                *(
                    http.post(url, json={"body": "Once {{ firstName }}"}, headers=headers)
                    for _ in range(200)
                )
            )

    responses = asyncio.run(race())
    assert [r.status_code for r in responses] == [201] * 200, {r.text for r in responses}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert Message.objects.count() == 1
    # The Procfile's worker may already have sequenced the ledger entry into a record.
    sent = {"action": "message.sent"}  # the ledger also holds the client's and token's creation
    assert (
        AuditEntry.objects.filter(**sent).count() + AuditRecord.objects.filter(**sent).count() == 1
    )


def test_make_run_serves_everything_on_one_port_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "MAKEFLAGS", "MAKELEVEL"}
    }
    env.update(PORT=str(port), CLIENTDESK_VAR_DIR=str(tmp_path / "var"))
    with open(tmp_path / "make-run.log", "wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz", make, timeout=180)
            printed = (tmp_path / "make-run.log").read_text()
            assert f"Clientdesk on http://127.0.0.1:{port}/ with a delivery worker" in printed
            assert re.search(r"Agent\s+agent / agent-", printed), printed
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
            # The event-stream paths are served by the same server (no proxy in front).
            assert httpx.get(f"http://127.0.0.1:{port}/api/v1/events").status_code in {
                401,
                403,
                404,
            }
            assert httpx.get(f"http://127.0.0.1:{port}/accounts/login/").status_code == 200
            children = _group(make.pid)
            assert "run_worker" in children and "granian" in children, children
        finally:
            _stop(make, signal.SIGINT)
    # Ctrl-C reaches the whole group, as in a terminal: the worker and the server end too.
    deadline = time.monotonic() + 20
    while (left := _group(make.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, left


def _group(pgid: int) -> str:
    return subprocess.run(["pgrep", "-a", "-g", str(pgid)], capture_output=True, text=True).stdout
