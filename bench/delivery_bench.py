"""Webhook delivery: how fast `manage.py run_worker` drains a queue, and send -> arrival latency.

Run by bench/run.py with DATABASE_URL naming the bench database:
`python bench/delivery_bench.py --out FILE --parts throughput,latency [options]`.

The receiver (bench/receiver.py) records and verifies every webhook; the endpoint points at it
through the app's `endpoint_configure` (CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS=1 for loopback).
- throughput (PostgreSQL): K idle workers (`run_worker --concurrency C`), then N deliveries
  queued in one transaction with the app's `delivery_create`; from that commit to the last
  `delivered_at`. Beside each K, a bare `httpx.AsyncClient` with K x C tasks posts the same
  N payloads, signed with `standardwebhooks`, to the same receiver.
- latency: one worker; this process sends through `message_send` at a steady rate; commit (the
  call returned) -> first attempt's `started_at`, and -> the receiver's arrival clock.
Every part checks that each delivery arrived exactly once, signed, and is delivered.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

# The receiver is on 127.0.0.1, which the app refuses unless told otherwise (here and in the
# worker processes, which inherit this environment).
common.setup_django(CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1")

import httpx
import psycopg
from django.db import connection, transaction
from standardwebhooks import Webhook

import datagen
from clientdesk.clients.models import Client
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.channels import webhook_body
from clientdesk.delivery.models import (
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingEndpoint,
)
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.delivery.services.queue import delivery_create
from clientdesk.messaging.models import Direction, Message
from clientdesk.messaging.outbound import webhook_payload
from clientdesk.messaging.services.sending import message_send

USER_AGENT = "clientdesk-bench"
WORK = common.VAR_DIR / "work"
Items = list[tuple[Client, Message]]


def log(message: str) -> None:
    common.say(f"delivery/{connection.vendor}", message)


class Receiver(httpx.Client):
    def __init__(self, port: int) -> None:
        super().__init__(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False)
        self.url = f"http://127.0.0.1:{port}/hook"
        self.admin = common.bench_users()[0]

    def configure(self) -> str:
        """A new endpoint (and so a new secret) through the app's own service."""
        OutgoingEndpoint.objects.all().delete()
        endpoint, _ = endpoint_configure(user=self.admin, url=self.url, enabled=True)
        self.post("/_reset", json={"secret": endpoint.secret}).raise_for_status()
        return str(endpoint.secret)

    def count(self) -> int:
        return int(self.get("/_count").json()["count"])

    def records(self) -> tuple[list[tuple[float, str, str | None, bool]], float]:
        data = self.get("/_records").json()
        return [tuple(r) for r in data["records"]], float(data["cpu_seconds"])  # type: ignore[misc]

    def wait_for(self, count: int, timeout: float) -> bool:
        return common.until(lambda: self.count() >= count, timeout, every=0.05)


def sample_clients(count: int, clients: int, seed: int) -> list[Client]:
    rng = random.Random(seed)
    wanted = [f"CRM-{rng.randint(1, clients):07d}" for _ in range(count)]
    fields = ("id", "external_id", "first_name")
    return list(Client.objects.filter(external_id__in=wanted).only(*fields))


def payloads(agent: Any, clients: list[Client], n: int) -> Items:
    """n messages as the app would send them (not saved): their webhook payloads are real."""
    rng = random.Random(datagen.SEED + 7)
    out = []
    for _ in range(n):
        client = rng.choice(clients)
        body = common.BODY.replace("{{ firstName }}", client.first_name)
        message = Message(id=uuid.uuid4(), client=client, direction=Direction.OUT, sender=agent)
        message.body, message.source, message.created_at = body, common.BODY, datetime.now(UTC)
        out.append((client, message))
    return out


def enqueue(items: Items) -> tuple[list[Delivery], float, float]:
    """Queue every item with the app's delivery_create in one transaction; return the rows,
    the commit time (time.time()) and how long the transaction took."""
    started = time.perf_counter()
    with transaction.atomic():
        rows = [
            delivery_create(
                channel=Channel.WEBHOOK,
                client=client,
                subject_id=message.id,
                payload=webhook_payload(message),
            )
            for client, message in items
        ]
    return rows, time.time(), time.perf_counter() - started


def xact_commits() -> int:
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return int(cursor.fetchone()[0])


def sample_sessions(halt: threading.Event, out: dict[str, Any]) -> None:
    """Every 50 ms, what the bench database's other sessions are doing (pg_stat_activity):
    how many run a statement, and how many of those wait for a lock, and on what."""
    active, locked, waits, statements = [], [], Counter[str](), Counter[str]()
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        while not halt.is_set():
            rows = conn.execute(
                "SELECT state, wait_event_type, wait_event, "
                "left(query, 45) || ' ... ' || right(query, 30) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchall()
            running = [r for r in rows if r[0] == "active"]
            waiting = [r for r in running if r[1] == "Lock"]
            active.append(len(running))
            locked.append(len(waiting))
            waits.update(f"{kind}:{event}" for _, kind, event, _ in waiting)
            statements.update(query for *_, query in waiting)
            halt.wait(0.05)
    n = max(1, len(active))
    out.update(
        samples=len(active),
        mean_active=round(sum(active) / n, 2),
        mean_waiting_for_lock=round(sum(locked) / n, 2),
        share_of_samples_with_a_lock_wait=round(sum(1 for x in locked if x) / n, 3),
        lock_waits=dict(waits.most_common(5)),
        statements_waiting=dict(statements.most_common(5)),
    )


class Workers:
    """K `manage.py run_worker --concurrency C` processes, started and stopped by pid."""

    def __init__(self, count: int, concurrency: int, label: str) -> None:
        self.sockets = common.VAR_DIR / "workers"
        if connection.vendor == "sqlite":  # left by workers of an earlier run
            for stale in self.sockets.glob("*.sock"):
                stale.unlink(missing_ok=True)
        self.logs = [WORK / f"worker-{label}-{i}.log" for i in range(count)]
        command = [str(common.PYTHON), "manage.py", "run_worker", "--concurrency", str(concurrency)]
        self.processes = []
        for path in self.logs:
            with path.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(command, cwd=common.BENCH_DIR.parent, stdout=out, stderr=out)
                )
        # Until every worker waits for wake-ups (LISTEN, or its socket bound).
        if not common.until(lambda: self._listening() == count, 60, every=0.1):
            raise SystemExit("workers did not start listening within 60 s")
        time.sleep(0.5)  # from LISTEN to the first wait: one idle look at the queue
        self.cpu_at_start = self.cpu()

    def _listening(self) -> int:
        if any(p.poll() is not None for p in self.processes):
            raise SystemExit("a worker exited")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query = 'LISTEN clientdesk_work'"
                )
                return int(cursor.fetchone()[0])
        names = [p.name for p in self.sockets.glob("*.sock")]
        return sum(any(n.startswith(f"{p.pid}-") for n in names) for p in self.processes)

    def cpu(self) -> float:
        return sum(common.cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> dict[str, Any]:
        used = self.cpu() - self.cpu_at_start
        for process in self.processes:
            process.terminate()
        codes = [common.stop(process) for process in self.processes]
        text = "".join(path.read_text(errors="replace") for path in self.logs)
        return {
            "cpu_seconds": round(used, 2),
            "exit_codes": codes,
            "log_tracebacks": text.count("Traceback"),
            "log_errors": text.count("ERROR"),
        }


def arrivals_check(records: list[tuple[Any, ...]], expected_ids: set[str]) -> dict[str, Any]:
    """Every expected webhook-id exactly once, nothing else, every signature valid. The
    ledger's own audit.checkpoint webhooks (a worker signs one when the ledger grew) are not
    the messages measured here and are left out."""
    checkpoints = Delivery.objects.filter(payload__type="audit.checkpoint")
    ledger = set(checkpoints.values_list("webhook_id", flat=True))
    records = [r for r in records if r[1] not in ledger]
    expected_ids = expected_ids - ledger
    seen = Counter(webhook_id for _, webhook_id, _, _ in records)
    return {
        "requests": len(records),
        "expected": len(expected_ids),
        "distinct_ids": len(seen),
        "missing": len(expected_ids - set(seen)),
        "duplicated_ids": sum(1 for n in seen.values() if n > 1),
        "unexpected_ids": len(set(seen) - expected_ids),
        "signature_not_verified": sum(1 for *_, ok in records if not ok),
        "exactly_once": set(seen) == expected_ids and all(n == 1 for n in seen.values()),
    }


def database_check(ids: list[uuid.UUID]) -> dict[str, Any]:
    statuses = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
    attempts = DeliveryAttempt.objects.filter(delivery_id__in=ids)
    return {
        "statuses": dict(statuses),
        "attempts": attempts.count(),
        "failed_attempts": attempts.exclude(error="").count(),
        "all_delivered": statuses.get(DeliveryStatus.DELIVERED, 0) == len(ids),
    }


def wait_settled(ids: list[uuid.UUID], timeout: float) -> bool:
    """Until no delivery is pending or being sent (the worker records after the POST)."""
    busy = Delivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING])
    return common.until(lambda: not busy.filter(id__in=ids).exists(), timeout, every=0.1)


def drain_with_workers(receiver: Receiver, items: Items, workers: int, conc: int) -> dict:
    common.empty_sent_tables()
    receiver.configure()
    pool = Workers(workers, conc, f"drain{workers}")
    xacts_before = xact_commits()
    halt, waits = threading.Event(), {}
    sampler = threading.Thread(target=sample_sessions, args=(halt, waits))
    sampler.start()
    rows, committed, enqueue_seconds = enqueue(items)
    n, ids = len(rows), [row.id for row in rows]
    arrived = receiver.wait_for(n, timeout=600)
    settled = wait_settled(ids, timeout=120)
    finished = time.time()
    halt.set()
    sampler.join()
    worker_info = pool.stop()
    time.sleep(1.0)  # exited backends have flushed their statistics
    xacts = xact_commits() - xacts_before
    records, receiver_cpu = receiver.records()
    done = Delivery.objects.filter(id__in=ids, delivered_at__isnull=False)
    delivered = sorted(t.timestamp() for t in done.values_list("delivered_at", flat=True))
    starts = DeliveryAttempt.objects.filter(delivery_id__in=ids).values_list("started_at")
    first_start = min(t.timestamp() for (t,) in starts)
    drain = (delivered[-1] if delivered else finished) - committed
    lo, hi = delivered[len(delivered) // 10], delivered[(len(delivered) * 9) // 10]
    out = {
        "workers": workers,
        "concurrency_each": conc,
        "total_concurrency": workers * conc,
        "deliveries": n,
        "enqueue_transaction_s": round(enqueue_seconds, 3),
        "first_attempt_after_commit_ms": round((first_start - committed) * 1000, 1),
        "drain_s": round(drain, 3),
        "per_second": round(n / drain, 1),
        "steady_per_second_10_90": round(0.8 * len(delivered) / (hi - lo), 1) if hi > lo else None,
        "arrived_in_time": arrived and settled,
        "receiver": arrivals_check(records, {row.webhook_id for row in rows}),
        "receiver_cpu_seconds": receiver_cpu,
        "database": database_check(ids),
        "db_transactions_per_delivery": round(xacts / n, 2) if xacts else None,
        "db_sessions_while_draining": waits,
        "worker_processes": worker_info,
    }
    log(
        f"{workers} worker(s) x {conc}: {n} deliveries in {drain:.2f} s = "
        f"{out['per_second']}/s; exactly once: {out['receiver']['exactly_once']}"
    )
    return out


async def post_all(bodies: list[tuple[str, str]], secret: str, url: str, conc: int) -> Any:
    webhook, statuses, queue = Webhook(secret), Counter[str](), iter(bodies)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as http:

        async def runner() -> None:
            for webhook_id, body in queue:
                now = datetime.now(UTC)
                headers = {
                    "webhook-id": webhook_id,
                    "webhook-timestamp": str(math.floor(now.timestamp())),
                    "webhook-signature": webhook.sign(webhook_id, now, body),
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                }
                try:
                    response = await http.post(url, content=body.encode(), headers=headers)
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1

        started = time.perf_counter()
        await asyncio.gather(*(runner() for _ in range(conc)))
        return statuses, time.perf_counter() - started


def drain_with_httpx(receiver: Receiver, bodies: list[tuple[str, str]], conc: int) -> dict:
    """The same signed payloads, posted by a bare async client: what the path itself allows."""
    secret = receiver.configure()
    cpu_before = time.process_time()
    statuses, elapsed = asyncio.run(post_all(bodies, secret, receiver.url, conc))
    cpu = time.process_time() - cpu_before
    records, receiver_cpu = receiver.records()
    n = len(bodies)
    out = {
        "total_concurrency": conc,
        "deliveries": n,
        "elapsed_s": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        "statuses": dict(statuses),
        "client_cpu_seconds": round(cpu, 2),
        "receiver": arrivals_check(records, {webhook_id for webhook_id, _ in bodies}),
        "receiver_cpu_seconds": receiver_cpu,
    }
    log(
        f"baseline httpx x {conc}: {n} in {elapsed:.2f} s = {out['per_second']}/s; "
        f"exactly once: {out['receiver']['exactly_once']}"
    )
    return out


def throughput(args: argparse.Namespace, agent: Any, receiver: Receiver) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        raise SystemExit("the throughput part runs on PostgreSQL")
    items = payloads(agent, sample_clients(2_000, args.count, datagen.SEED + 5), args.deliveries)
    # The baseline posts exactly what a worker posts for these messages (channels.webhook_body).
    bodies = [
        (f"msg_{uuid.uuid4().hex}", webhook_body(Delivery(payload=webhook_payload(message))))
        for _, message in items
    ]
    parts: dict[str, Any] = {"workers": [], "baseline": []}
    for count in args.worker_counts:
        conc = count * args.worker_concurrency
        parts["baseline"].append(drain_with_httpx(receiver, bodies, conc))
        parts["workers"].append(drain_with_workers(receiver, items, count, args.worker_concurrency))
    return parts


def send_paced(agent: Any, clients: list[str], rate: float, seconds: float) -> list[dict]:
    """Send messages through the app's `message_send`, one every 1/rate s, for `seconds`.

    `before` is taken just before the call and `committed` just after it returns: the send's
    transaction has committed by then, so `committed` is at most a return path late."""
    rng = random.Random(datagen.SEED + 9)
    sent = []
    start = time.perf_counter()
    for i in range(round(seconds * rate)):
        time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        before = time.time()
        result = message_send(
            sender=agent,
            client_id=rng.choice(clients),
            idempotency_key=str(uuid.uuid4()),
            meta=RequestMeta(ip="127.0.0.1", user_agent=USER_AGENT, request_id=uuid.uuid4().hex),
            body=common.BODY,
        )
        sent.append({"id": str(result.message_id), "before": before, "committed": time.time()})
    return sent


def latency(args: argparse.Namespace, agent: Any, receiver: Receiver) -> dict[str, Any]:
    common.empty_sent_tables()
    receiver.configure()
    clients = [str(c.id) for c in sample_clients(1_000, args.count, datagen.SEED + 8)]
    pool = Workers(1, args.worker_concurrency, f"latency-{connection.vendor}")
    send_paced(agent, clients, args.rate, args.latency_warmup)
    warm = Message.objects.count()
    sent = send_paced(agent, clients, args.rate, args.latency_duration)
    # The messages' deliveries settle first; the receiver then holds them and any ledger
    # checkpoint the worker sent meanwhile (arrivals_check leaves those out).
    ids = list(Delivery.objects.filter(payload__type="message.sent").values_list("id", flat=True))
    settled = wait_settled(ids, timeout=120)
    checkpoints = Delivery.objects.filter(payload__type="audit.checkpoint").count()
    arrived = receiver.wait_for(warm + len(sent) + checkpoints, timeout=60)
    worker_info = pool.stop()
    records, receiver_cpu = receiver.records()
    arrival = {mid: t for t, _, mid, _ in records if mid}
    first = DeliveryAttempt.objects.filter(number=1)
    started = dict(first.values_list("delivery__subject_id", "started_at"))
    to_attempt = [
        started[uuid.UUID(s["id"])].timestamp() - s["committed"]
        for s in sent
        if uuid.UUID(s["id"]) in started
    ]
    span = sent[-1]["committed"] - sent[0]["before"] if len(sent) > 1 else 0
    out = {
        "vendor": connection.vendor,
        "workers": 1,
        "concurrency": args.worker_concurrency,
        "target_rate": args.rate,
        "duration_s": args.latency_duration,
        "warmup_messages": warm,
        "messages": len(sent),
        "achieved_rate": round((len(sent) - 1) / span, 2) if span else None,
        "send_to_first_attempt": common.summary_ms(to_attempt),
        "send_to_arrival": common.summary_ms(
            [arrival[s["id"]] - s["committed"] for s in sent if s["id"] in arrival]
        ),
        "message_send_call": common.summary_ms([s["committed"] - s["before"] for s in sent]),
        "arrived_in_time": arrived and settled,
        "receiver": arrivals_check(
            records, set(Delivery.objects.values_list("webhook_id", flat=True))
        ),
        "receiver_cpu_seconds": receiver_cpu,
        "database": database_check(ids),
        "deliveries": len(ids),
        "worker_processes": worker_info,
    }
    log(
        f"latency at {args.rate}/s: send->attempt p50 {out['send_to_first_attempt']['p50_ms']} "
        f"ms, send->arrival p50 {out['send_to_arrival']['p50_ms']} ms p99 "
        f"{out['send_to_arrival']['p99_ms']} ms; exactly once: {out['receiver']['exactly_once']}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parts", default="throughput,latency")
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument(
        "--worker-counts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--worker-concurrency", type=int, default=16)  # run_worker's default
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--latency-duration", type=float, default=20.0)
    parser.add_argument("--latency-warmup", type=float, default=2.0)
    args = parser.parse_args()
    runners = {"throughput": throughput, "latency": latency}
    WORK.mkdir(parents=True, exist_ok=True)
    agent = common.bench_users()[1]
    report: dict[str, Any] = {
        "vendor": connection.vendor,
        "receiver": "bench/receiver.py: uvicorn 0.54 (h11, asyncio), 1 process, bare ASGI app",
        "db_pool_max_size_per_process": int(os.environ.get("CLIENTDESK_DB_POOL_SIZE", "10"))
        if connection.vendor == "postgresql"
        else None,
    }
    port = common.free_port()
    command = [str(common.PYTHON), str(common.BENCH_DIR / "receiver.py"), "--port", str(port)]
    try:
        with common.served(command, port, log=WORK / "receiver.log", path="/_count"):
            receiver = Receiver(port)
            for part in filter(None, (p.strip() for p in args.parts.split(","))):
                log(f"part: {part}")
                report[part] = runners[part](args, agent, receiver)
    finally:
        # Leave the bench database as the send benchmark expects it: no endpoint.
        OutgoingEndpoint.objects.all().delete()
    args.out.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
