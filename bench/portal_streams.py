"""Many open portal streams on one web process: memory per stream, and commit -> received at
every stream for a burst of sends.

    .venv/bin/python bench/portal_streams.py --db sqlite --streams 1000 --burst 20
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_portal \\
        .venv/bin/python bench/portal_streams.py --db postgres --streams 1000 --burst 20

One granian ASGI process (what `make run` and the Procfile's `events` start) serves the streams;
`--server uvicorn` runs plain uvicorn (asyncio loop, h11) instead, as measured before. This
process opens them all on one client's portal session (so every event reaches every stream),
waits until each is subscribed, then sends `--burst` messages through `message_send`, one after
another as fast as they commit, from a thread while the event loop keeps reading. For every
stream and message it records the time from that message's commit to its arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    """Resident memory of the server: the process and its children (granian's worker runs in
    a child of the process started here)."""
    import psutil

    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.memory_info().rss for p in family) // 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")
    sys.path.insert(0, str(ROOT / "src"))
    import django

    django.setup()


class Stream:
    """One SSE connection read with asyncio; records when each message id arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.subscribed = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer = writer
        writer.write(
            f"GET /portal/api/v1/events?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.monotonic()
            buffer += chunk
            # The first `id:` line comes after the stream subscribed to the hub.
            if not self.subscribed.is_set() and b"\nid: " in buffer:
                self.subscribed.set()
            while b'"id":"' in buffer:
                start = buffer.index(b'"id":"') + 6
                if len(buffer) < start + 36:
                    break
                self.arrivals.setdefault(buffer[start : start + 36].decode(), now)
                buffer = buffer[start + 36 :]
            buffer = buffer[-200:]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def measure(args: argparse.Namespace, port: int, token: str, server_pid: int) -> dict:
    from clientdesk.accounts.models import User
    from clientdesk.clients.models import Client
    from clientdesk.core.request_meta import RequestMeta
    from clientdesk.messaging.services.sending import message_send

    agent = await asyncio.to_thread(lambda: User.objects.get(username="bench-portal-agent"))
    client = await asyncio.to_thread(lambda: Client.objects.get(external_id="BENCH-PORTAL"))
    rss_before = rss_kib(server_pid)
    streams = [Stream() for _ in range(args.streams)]
    tasks = []
    opened = time.monotonic()
    for i, stream in enumerate(streams):
        tasks.append(asyncio.create_task(stream.run(port, token)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # don't overflow the listen backlog
    await asyncio.wait_for(asyncio.gather(*(s.subscribed.wait() for s in streams)), 300)
    open_seconds = time.monotonic() - opened
    await asyncio.sleep(1)
    rss_open = rss_kib(server_pid)

    def send_burst() -> list[tuple[str, float]]:
        committed = []
        for i in range(args.burst):
            result = message_send(
                sender=agent,
                client_id=client.id,
                body=f"Bench message {i}",
                idempotency_key=str(uuid.uuid4()),
                meta=RequestMeta(),
            )
            committed.append((str(result.message_id), time.monotonic()))
        return committed

    committed = await asyncio.to_thread(send_burst)
    deadline = time.monotonic() + 60
    want = {m for m, _ in committed}
    while time.monotonic() < deadline:
        if all(want <= s.arrivals.keys() for s in streams):
            break
        await asyncio.sleep(0.05)
    latencies = []
    missing = 0
    last_arrival = 0.0
    for stream in streams:
        for message_id, at in committed:
            arrived = stream.arrivals.get(message_id)
            if arrived is None:
                missing += 1
            else:
                latencies.append((arrived - at) * 1000)
                last_arrival = max(last_arrival, arrived)
    span = last_arrival - committed[0][1]
    for stream in streams:
        stream.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 1)

    return {
        "streams": args.streams,
        "burst": args.burst,
        "open_seconds": round(open_seconds, 2),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_open_mib": round(rss_open / 1024, 1),
        "kib_per_stream": round((rss_open - rss_before) / args.streams, 1),
        "rss_after_close_mib": round(rss_kib(server_pid) / 1024, 1),
        "deliveries": len(latencies),
        "missing": missing,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "events_per_second": round(len(latencies) / span) if span > 0 else None,
        "send_seconds": round(committed[-1][1] - committed[0][1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    args = parser.parse_args()

    var = ROOT / "var" / "bench-portal"
    var.mkdir(parents=True, exist_ok=True)
    if args.db == "sqlite":
        database_url = f"sqlite:///{var / 'portal.sqlite3'}"
    else:
        database_url = os.environ.get("DATABASE_URL", "")
        if not database_url.startswith("postgres"):
            sys.exit("--db postgres needs DATABASE_URL=postgres://...")
    env = {
        "DATABASE_URL": database_url,
        "CLIENTDESK_VAR_DIR": str(var),
        "CLIENTDESK_PORTAL_SESSION_MINUTES": "120",
        "CLIENTDESK_DB_POOL_SIZE": "10",
    }
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    setup_django(env)
    from django.contrib.auth.models import Group

    from clientdesk.accounts.models import User
    from clientdesk.clients.models import Client
    from clientdesk.clients.services import client_create
    from clientdesk.portal.services import _issue

    agent = User.objects.filter(username="bench-portal-agent").first()
    if agent is None:
        agent = User.objects.create_user("bench-portal-agent", password=uuid.uuid4().hex)
    agent.groups.add(Group.objects.get(name="Agent"))
    client = Client.objects.filter(external_id="BENCH-PORTAL").first() or client_create(
        external_id="BENCH-PORTAL", first_name="Bench", last_name="Client"
    )
    token = _issue(client=client, via="link").token
    port = args.port or free_port()
    if args.server == "granian":
        command = [
            str(Path(python).parent / "granian"),
            "--interface",
            "asgi",
            "clientdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backlog",
            "4096",
            "--log-level",
            "warning",
        ]
    else:
        command = [
            python,
            "-m",
            "uvicorn",
            "clientdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--backlog",
            "4096",
        ]
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})  # fmt: skip
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{args.server} did not start")
            time.sleep(0.2)
        result: dict[str, Any] = asyncio.run(measure(args, port, token, server.pid))
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    result.update(
        {
            "database": args.db,
            "server": (
                "granian ASGI, 1 worker"
                if args.server == "granian"
                else "uvicorn, asyncio loop, h11, 1 process"
            ),
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
        }
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
