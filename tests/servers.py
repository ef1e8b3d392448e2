"""Real servers for stream tests: Clientdesk under uvicorn on loopback (in this process, so a
test can count what the server holds, or as a separate process), and an SSE reader."""

import asyncio
import contextlib
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


class InProcessServer:
    """uvicorn (asyncio, h11) serving the ASGI app in a thread of the test process."""

    def __init__(self) -> None:
        from clientdesk.asgi import application

        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())
        # Stop what the app left running (the live-event hub), as a process exit would.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def call(self, fn: Any) -> Any:
        """Run `fn()` on the server's event loop and return its result."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def subscribers(self) -> int:
        """Streams subscribed to this server's live-event hub."""
        from clientdesk.core.live.hub import hub

        return int(self.call(lambda: hub().subscriber_count))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


_ports = itertools.count()
PORTS_PER_WORKER = 500


def free_port() -> int:
    """A port for a server a test starts later, which no other test of this run is handed.

    Below the kernel's ephemeral range (where every socket bound to port 0 lands, so no server
    of another test can take it in the meantime), in a block of its own for each pytest-xdist
    worker, and free when handed out."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    block = 20_000 + (int(worker) if worker.isdigit() else 0) * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = block + next(_ports) % PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {block}-{block + PORTS_PER_WORKER - 1}")


def wait_until_answering(url: str, process: subprocess.Popen[bytes], timeout: float = 240) -> None:
    """Until `url` answers 200, failing at once if `process` (what should serve it) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"nothing answered at {url} in {timeout} s")


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CLIENTDESK_VAR_DIR": str(settings.VAR_DIR),
        "CLIENTDESK_STATIC_FINDERS": "1",
        "SECRET_KEY": settings.SECRET_KEY,
        **extra,
    }


@contextlib.contextmanager
def uvicorn_process(**env: str) -> Iterator[str]:
    """Clientdesk in its own uvicorn process on the test database; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "clientdesk.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--timeout-graceful-shutdown", "1",
        ],
        cwd=ROOT,
        env=child_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()  # else reading its stderr waits for it forever
                raise RuntimeError(f"uvicorn did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class SSEEvent:
    id: str | None
    event: str
    data: str
    received: float  # time.monotonic()

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEReader:
    """Reads one event stream over a plain socket in a thread, keeping events and comments as
    they arrive. `close()` shuts the socket down, as a browser tab closing would."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    events: "queue.Queue[SSEEvent]" = field(default_factory=queue.Queue)
    opened: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    body: str = ""

    def __post_init__(self) -> None:
        parts = httpx.URL(self.url)
        self._sock = socket.create_connection((parts.host, parts.port or 80), timeout=120)
        target = parts.raw_path.decode()
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.host}:{parts.port}"]
        lines += [f"{k}: {v}" for k, v in {"Accept": "text/event-stream", **self.headers}.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.opened.wait(20):
            raise AssertionError(f"stream {self.url} did not open")

    def _chunks(self) -> Iterator[bytes]:
        file = self._sock.makefile("rb")
        status_line = file.readline().decode()
        self.status = int(status_line.split()[1])
        while (line := file.readline().decode().rstrip("\r\n")) != "":
            name, _, value = line.partition(":")
            self.response_headers[name.strip().lower()] = value.strip()
        if self.response_headers.get("transfer-encoding") == "chunked":
            while True:
                size = int(file.readline().split(b";")[0], 16)
                if size == 0:
                    return
                yield file.read(size)
                file.readline()
        else:
            length = int(self.response_headers.get("content-length", "0"))
            yield file.read(length)

    def _run(self) -> None:
        buffer = ""
        fields: dict[str, str] = {}
        try:
            for chunk in self._chunks():
                if self.status != 200:
                    self.body += chunk.decode()
                    continue
                buffer += chunk.decode()
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    self.raw.append(line)
                    if line.startswith(":"):
                        self.comments.append(line)
                        self.opened.set()
                    elif line == "":
                        if "data" in fields:
                            self.events.put(
                                SSEEvent(
                                    fields.get("id"),
                                    fields.get("event", "message"),
                                    fields["data"],
                                    time.monotonic(),
                                )
                            )
                        fields = {}
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except (OSError, ValueError):
            pass  # closed from our side
        finally:
            self.opened.set()
            self.ended.set()

    def next(self, timeout: float = 30.0) -> SSEEvent:
        """The next event; the limit is generous so that a loaded machine only slows a test."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s on {self.url}") from None

    def nothing_more(self, wait: float = 0.5) -> bool:
        time.sleep(wait)
        return self.events.empty()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self.ended.wait(10)


def procfile_command(name: str) -> str:
    """A process's command line from the Procfile (`web`: WSGI, `events`: ASGI)."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    commands = dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))
    return commands[name]


@contextlib.contextmanager
def procfile_process(name: str, log: Path, **env: str) -> Iterator[tuple[str, int]]:
    """The Procfile's `name` process (granian) on a free loopback port, on the test database;
    yields its URL and pid. Its output goes to `log`."""
    port = free_port()
    environment = child_env(
        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        HOST="127.0.0.1",
        PORT=str(port),
        EVENTS_PORT=str(port),
        WEB_CONCURRENCY="1",
        EVENTS_CONCURRENCY="1",
        **env,
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_command(name)}"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # The process serves (not: its database answers; a test may take that away).
                if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
