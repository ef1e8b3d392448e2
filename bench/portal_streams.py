"""Many open portal streams on one web process: memory per stream, and commit -> received at
every stream for a burst of sends.

    .venv/bin/python bench/portal_streams.py --db sqlite --streams 1000 --burst 20
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_portal \\
        .venv/bin/python bench/portal_streams.py --db postgres --streams 1000 --burst 20

One granian ASGI process (what `make run` and the Procfile's `events` start) serves the streams.
This process opens them all (asyncio sockets) on one client's portal session, so every event
reaches every stream, waits until each is subscribed, then sends `--burst` messages through
`message_send`, one after another as fast as they commit, from a thread while the event loop
keeps reading. For every stream and message it records the time from that message's commit to
its arrival. Server memory is its process and its children's (granian's worker is a child);
server CPU per delivery is theirs from the first send to the last arrival. `--profile FILE`
writes py-spy's collapsed stacks of the worker over the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import psutil

import common


def rss_kib(pid: int) -> int:
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.memory_info().rss for p in family) // 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server and its worker so far."""
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(t.user + t.system for t in (p.cpu_times() for p in family))


def start_profile(pid: int, path: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker (granian's child) while it holds the GIL, until interrupted,
    as collapsed stacks in `path`."""
    worker = ([*psutil.Process(pid).children(recursive=True)] or [psutil.Process(pid)])[-1]
    command = f"{common.VENV_BIN}/py-spy record --gil --rate 250 --format raw --pid {worker.pid}"
    return subprocess.Popen([*command.split(), "--output", path], stdout=subprocess.DEVNULL)


class Stream:
    """One SSE connection read with asyncio; records when each message id arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.subscribed = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, token: str) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(
            f"GET /portal/api/v1/events?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await self.writer.drain()
        buffer = b""
        while chunk := await reader.read(65536):
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


async def measure(args: argparse.Namespace, port: int, token: str, pid: int, client: Any) -> dict:
    from clientdesk.core.request_meta import RequestMeta
    from clientdesk.messaging.services.sending import message_send

    agent = await asyncio.to_thread(lambda: common.bench_users()[1])
    rss_before = rss_kib(pid)
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
    rss_open = rss_kib(pid)

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

    profiler = start_profile(pid, args.profile) if args.profile else None
    if profiler is not None:
        await asyncio.sleep(1)  # py-spy attaches
    cpu_before = cpu_seconds(pid)
    committed = await asyncio.to_thread(send_burst)
    deadline, want = time.monotonic() + 60, {m for m, _ in committed}
    while time.monotonic() < deadline and not all(want <= s.arrivals.keys() for s in streams):
        await asyncio.sleep(0.05)
    cpu_burst = cpu_seconds(pid) - cpu_before
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        await asyncio.to_thread(profiler.wait, 30)
    arrivals = [s.arrivals.get(m) for s in streams for m, _ in committed]
    latencies = sorted(
        (s.arrivals[m] - at) * 1000 for s in streams for m, at in committed if m in s.arrivals
    )
    span = max((a for a in arrivals if a is not None), default=0.0) - committed[0][1]
    for stream, task in zip(streams, tasks, strict=True):
        if stream.writer:
            stream.writer.close()
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 1)

    return {
        "streams": args.streams,
        "burst": args.burst,
        "open_seconds": round(open_seconds, 2),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_open_mib": round(rss_open / 1024, 1),
        "kib_per_stream": round((rss_open - rss_before) / args.streams, 1),
        "rss_after_close_mib": round(rss_kib(pid) / 1024, 1),
        "deliveries": len(latencies),
        "missing": arrivals.count(None),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "events_per_second": round(len(latencies) / span) if span > 0 else None,
        # The events process's CPU from the first send until the last arrival, per delivery.
        "server_cpu_us_per_delivery": round(cpu_burst * 1e6 / max(len(latencies), 1), 1),
        "send_seconds": round(committed[-1][1] - committed[0][1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--profile", help="py-spy the events worker during the burst into FILE")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if args.db == "sqlite":
        common.VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{common.VAR_DIR / 'portal.sqlite3'}"
    elif not url.startswith("postgres"):
        sys.exit("--db postgres needs DATABASE_URL=postgres://...")
    env = {
        "DATABASE_URL": url,
        "CLIENTDESK_VAR_DIR": str(common.VAR_DIR),
        "CLIENTDESK_PORTAL_SESSION_MINUTES": "120",
        # Every stream is the one client's here; in production a client holds at most 5.
        "CLIENTDESK_PORTAL_STREAMS_PER_CLIENT": str(args.streams),
        "CLIENTDESK_DB_POOL_SIZE": "10",
    }
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    migrate = [str(common.PYTHON), "manage.py", "migrate", "--noinput", "-v0"]
    subprocess.run(migrate, cwd=common.PROJECT, env={**os.environ, **env}, check=True)
    common.setup_django(**env)
    from clientdesk.clients.models import Client
    from clientdesk.clients.services import client_create
    from clientdesk.portal.services import _issue

    client = Client.objects.filter(external_id="BENCH-PORTAL").first() or client_create(
        external_id="BENCH-PORTAL", first_name="Bench", last_name="Client"
    )
    token = _issue(client=client, via="link").token
    port = common.free_port()
    command = (
        f"{common.VENV_BIN}/granian --interface asgi clientdesk.asgi:application --host 127.0.0.1 "
        f"--port {port} --workers 1 --backlog 4096 --log-level warning"
    )
    with common.served(command, port, {**os.environ, **env}) as server:
        result = asyncio.run(measure(args, port, token, server.pid, client))
    result.update(
        database=args.db,
        server="granian ASGI, 1 worker",
        cpus=os.cpu_count(),
        load_average_at_end=os.getloadavg(),
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
