"""How many open event streams one `events` process (the Procfile's command, granian ASGI, one
worker) holds while `/healthz` on that same process still answers within 100 ms.

    .venv/bin/python bench/stream_capacity.py --db sqlite --steps 0,500,1000,2000,4000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> \\
        .venv/bin/python bench/stream_capacity.py --db postgres

Streams are opened in steps (portal streams of clients holding 5 each, as the cap allows, read
by asyncio sockets in this process on the same CPUs); after each step, once every stream is
subscribed and the opening load has settled, 100 `/healthz` requests go one after another on
new connections, and 20 more stream attempts by a client already at its cap must each be 429.
Reported per step: /healthz p50/p95/max, the refused attempts' p50, the server's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import httpx
import psutil

import common

PER_CLIENT = 5


def rss_mib(pid: int) -> float:
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return round(sum(p.memory_info().rss for p in family) / 2**20, 1)


class Stream:
    def __init__(self) -> None:
        self.subscribed = asyncio.Event()
        self.status = b""
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
            buffer = (buffer + chunk)[-4096:]
            if not self.status:
                self.status = buffer[9:12]
            if not self.subscribed.is_set() and b"\nid: " in buffer:
                self.subscribed.set()
        self.subscribed.set()


async def timed_get(url: str, **params: str) -> tuple[int, float]:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:  # a new connection each time
        response = await client.get(url, params=params)
    return response.status_code, (time.monotonic() - started) * 1000


async def measure(args: argparse.Namespace, port: int, tokens: list[str], pid: int) -> list[dict]:
    streams: list[Stream] = []
    tasks: list[asyncio.Task[None]] = []
    results = []
    base = f"http://127.0.0.1:{port}"
    for step in args.steps:
        while len(streams) < step:
            stream = Stream()
            streams.append(stream)
            tasks.append(asyncio.create_task(stream.run(port, tokens[(len(streams) - 1) // 5])))
            if len(streams) % 50 == 0:
                await asyncio.sleep(0.05)  # don't overflow the listen backlog
        await asyncio.wait_for(asyncio.gather(*(s.subscribed.wait() for s in streams)), 600)
        refused_streams = sum(s.status != b"200" for s in streams)
        await asyncio.sleep(args.settle)
        health = []
        for _ in range(100):
            status, ms = await timed_get(f"{base}/healthz")
            assert status == 200, status
            health.append(ms)
        refusals = []
        for _ in range(20 if step >= PER_CLIENT else 0):  # the first client is at its cap
            status, ms = await timed_get(f"{base}/portal/api/v1/events", token=tokens[0])
            assert status == 429, status
            refusals.append(ms)
        health.sort()
        row = {
            "streams": step,
            "streams_not_200": refused_streams,
            "healthz_p50_ms": round(statistics.median(health), 1),
            "healthz_p95_ms": round(health[94], 1),
            "healthz_max_ms": round(health[-1], 1),
            "refused_p50_ms": round(statistics.median(refusals), 1) if refusals else None,
            "server_rss_mib": rss_mib(pid),
            "load_average": os.getloadavg()[0],
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    for stream, task in zip(streams, tasks, strict=True):
        if stream.writer:
            stream.writer.close()
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--steps", default="0,500,1000,2000,4000")
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    args.steps = [int(s) for s in args.steps.split(",")]
    url = os.environ.get("DATABASE_URL", "")
    if args.db == "sqlite":
        common.VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{common.VAR_DIR / 'streams.sqlite3'}"
    elif not url.startswith("postgres"):
        sys.exit("--db postgres needs DATABASE_URL=postgres://...")
    env = {
        "DATABASE_URL": url,
        "CLIENTDESK_VAR_DIR": str(common.VAR_DIR),
        "CLIENTDESK_PORTAL_SESSION_MINUTES": "120",
    }
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    migrate = [str(common.PYTHON), "manage.py", "migrate", "--noinput", "-v0"]
    subprocess.run(migrate, cwd=common.PROJECT, env={**os.environ, **env}, check=True)
    common.setup_django(**env)
    from clientdesk.clients.models import Client
    from clientdesk.clients.services import clients_bulk_create
    from clientdesk.portal.models import StreamLease
    from clientdesk.portal.services import _issue

    StreamLease.objects.all().delete()
    count = -(-max(args.steps) // PER_CLIENT)
    existing = {c.external_id: c for c in Client.objects.filter(external_id__startswith="BSC-")}
    clients_bulk_create(
        rows=[
            {"external_id": f"BSC-{n}", "first_name": "Stream", "last_name": f"Bench {n}"}
            for n in range(count)
            if f"BSC-{n}" not in existing
        ]
    )
    clients = Client.objects.filter(external_id__startswith="BSC-").order_by("external_id")[:count]
    tokens = [_issue(client=c, via="link").token for c in clients]
    port = common.free_port()
    command = common.PROJECT.joinpath("Procfile").read_text().split("events: ", 1)[1].split("\n")[0]
    command = command.replace("${HOST:-0.0.0.0}", "127.0.0.1").replace(
        "${EVENTS_PORT:-8001}", str(port)
    )
    command = command.replace("${EVENTS_CONCURRENCY:-1}", "1") + " --backlog 4096"
    command = f"{common.VENV_BIN}/{command}"
    with common.served(command, port, {**os.environ, **env}) as server:
        rows = asyncio.run(measure(args, port, tokens, server.pid))
    under = [r["streams"] for r in rows if r["healthz_p95_ms"] < 100]
    under_p50 = [r["streams"] for r in rows if r["healthz_p50_ms"] < 100]
    print(
        json.dumps(
            {
                "database": args.db,
                "server": "the Procfile's events (granian ASGI, 1 worker)",
                "cpus": os.cpu_count(),
                "held_with_healthz_p95_under_100ms": max(under) if under else 0,
                "held_with_healthz_p50_under_100ms": max(under_p50) if under_p50 else 0,
                "steps": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
