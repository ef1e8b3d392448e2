"""Webhook delivery: how fast `manage.py run_worker` drains a queue, and send -> arrival latency.

Run by bench/run.py in a subprocess with DATABASE_URL naming the bench database:
`python bench/delivery_bench.py --out FILE --parts throughput,idle,latency [options]`.

A receiver (bench/receiver.py: uvicorn with h11, one process, a bare ASGI function that checks
the Standard Webhooks signature, records the arrival and answers 204) listens on 127.0.0.1. The
outgoing endpoint is configured through the app's `endpoint_configure` (by a superuser
`bench-admin`), pointing at it; CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS=1 allows the loopback URL.

- throughput (PostgreSQL only): with K workers (`manage.py run_worker --concurrency C`, K
  processes) started and idle, N deliveries are queued in one transaction with the app's own
  `delivery_create` (payloads built by the app's `webhook_payload`). The clock starts at that
  commit (the workers wake on its NOTIFY) and stops at the last `delivered_at`. Next to each K,
  a baseline: one process with a bare `httpx.AsyncClient` and K x C tasks posts the same N
  payloads, signed with `standardwebhooks`, to the same receiver.
- idle: what one idle worker costs (transactions per second, CPU) with an enabled endpoint and
  an empty queue, and with webhook deliveries queued while the endpoint is disabled.
- latency (PostgreSQL or SQLite): one worker; this process sends messages through the app's
  `message_send` at a steady rate. Each send's commit time is taken when `message_send`
  returns; the first attempt's start is the worker's `DeliveryAttempt.started_at`; the arrival
  is the receiver's clock (the same machine clock).

After every part the receiver's records are checked: every queued delivery arrived exactly once
per webhook-id, with a valid signature, and the database says delivered.
"""

# Django is set up (below) before anything imports a model.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")
# The receiver is on 127.0.0.1, which the app refuses unless told otherwise (here and in the
# worker processes, which inherit this environment).
os.environ["CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS"] = "1"

import django

django.setup()

import httpx
import psycopg
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction
from standardwebhooks import Webhook

import datagen
from clientdesk.accounts.models import User
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
from clientdesk.delivery.services import delivery_create, endpoint_configure
from clientdesk.messaging.models import Direction, Message
from clientdesk.messaging.outbound import webhook_payload
from clientdesk.messaging.services.sending import message_send
from common import BENCH_DIR, PROJECT, PYTHON, cpu_seconds, summary_ms

ADMIN = "bench-admin"
AGENT = "bench-agent"
BODY = "Hello {{ firstName }}, your monthly statement is ready in your online cabinet."
USER_AGENT = "clientdesk-bench"
TABLES = (  # emptied before each part, in an order SQLite's foreign keys accept
    "delivery_deliveryattempt",
    "delivery_delivery",
    "messaging_idempotencykey",
    "messaging_message",
    "audit_activityevent",
    "audit_auditrecord",
)
LEDGER_TABLES = ("audit_auditentry", "audit_audittreenode", "audit_auditcheckpoint")
WORK = Path(settings.VAR_DIR) / "work"


def log(message: str) -> None:
    print(f"  [delivery/{connection.vendor}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the receiver -----------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = WORK / "receiver.log"
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [str(PYTHON), str(BENCH_DIR / "receiver.py"), "--port", str(self.port)],
                cwd=PROJECT,
                stdout=out,
                stderr=out,
            )
        self.http = httpx.Client(base_url=self.base, timeout=30, trust_env=False)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.count()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("the receiver did not start") from None
                time.sleep(0.1)

    def reset(self, secret: str) -> None:
        self.http.post("/_reset", json={"secret": secret}).raise_for_status()

    def count(self) -> int:
        return int(self.http.get("/_count").json()["count"])

    def records(self) -> tuple[list[tuple[float, str, str | None, bool]], float]:
        data = self.http.get("/_records").json()
        return [tuple(r) for r in data["records"]], float(data["cpu_seconds"])  # type: ignore[misc]

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= count:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the app's side -------------------------------------------------------------------------


def reset_tables() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The whole ledger goes too (TRUNCATE passes its append-only triggers): a ledger
            # with records but not their tree, or a checkpoint beyond its records, stops the
            # workers' sequencer.
            cursor.execute(f"TRUNCATE {', '.join(TABLES + LEDGER_TABLES)} CASCADE")
        else:
            for table in TABLES:
                cursor.execute(f"DELETE FROM {table}")


def users() -> tuple[User, User]:
    admin, _ = User.objects.get_or_create(
        username=ADMIN, defaults={"first_name": "Bench", "last_name": "Admin"}
    )
    admin.is_active = admin.is_superuser = admin.is_staff = True
    admin.save()
    agent, _ = User.objects.get_or_create(
        username=AGENT, defaults={"first_name": "Bench", "last_name": "Agent"}
    )
    agent.is_active = True
    agent.save()
    agent.groups.set([Group.objects.get(name="Agent")])
    return admin, User.objects.get(pk=agent.pk)  # a fresh object: no cached permissions


def configure_endpoint(admin: User, receiver: Receiver, *, enabled: bool = True) -> str:
    """A new endpoint (and so a new secret) through the app's own service."""
    OutgoingEndpoint.objects.all().delete()
    endpoint, _ = endpoint_configure(user=admin, url=receiver.url, enabled=enabled)
    receiver.reset(endpoint.secret)
    return endpoint.secret


def sample_clients(count: int, clients: int, seed: int) -> list[Client]:
    rng = random.Random(seed)
    wanted = [f"CRM-{rng.randint(1, clients):07d}" for _ in range(count)]
    return list(
        Client.objects.filter(external_id__in=wanted).only("id", "external_id", "first_name")
    )


def payloads(agent: User, clients: list[Client], n: int) -> list[tuple[Client, Message]]:
    """n messages as the app would send them (not saved): their webhook payloads are real."""
    rng = random.Random(datagen.SEED + 7)
    out = []
    for _ in range(n):
        client = rng.choice(clients)
        message = Message(
            id=uuid.uuid4(),
            client=client,
            direction=Direction.OUT,
            sender=agent,
            body=BODY.replace("{{ firstName }}", client.first_name),
            source=BODY,
            created_at=datetime.now(UTC),
        )
        out.append((client, message))
    return out


def enqueue(items: list[tuple[Client, Message]]) -> tuple[list[Delivery], float, float]:
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
    committed = time.time()
    return rows, committed, time.perf_counter() - started


def xact_commits() -> int:
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            return 0
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return int(cursor.fetchone()[0])


class WaitSampler(threading.Thread):
    """Every 50 ms, what the bench database's other sessions are doing (pg_stat_activity):
    how many run a statement, and how many of those wait for a lock, and on what."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._halt = threading.Event()
        self.samples = 0
        self.active: list[int] = []
        self.lock_waits: list[int] = []
        self.waits: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()

    def run(self) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            me = conn.info.backend_pid
            while not self._halt.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, "
                    "left(query, 45) || ' ... ' || right(query, 30) "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND pid <> %s",
                    [me],
                ).fetchall()
                active = [r for r in rows if r[0] == "active"]
                locked = [r for r in active if r[1] == "Lock"]
                self.samples += 1
                self.active.append(len(active))
                self.lock_waits.append(len(locked))
                for _, kind, event, query in locked:
                    self.waits[f"{kind}:{event}"] += 1
                    self.statements[query] += 1
                self._halt.wait(0.05)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        n = max(1, self.samples)
        return {
            "samples": self.samples,
            "mean_active": round(sum(self.active) / n, 2),
            "mean_waiting_for_lock": round(sum(self.lock_waits) / n, 2),
            "share_of_samples_with_a_lock_wait": round(sum(1 for x in self.lock_waits if x) / n, 3),
            "lock_waits": dict(self.waits.most_common(5)),
            "statements_waiting": dict(self.statements.most_common(5)),
        }


# --- workers ----------------------------------------------------------------------------------


class Workers:
    """K `manage.py run_worker --concurrency C` processes, started and stopped by pid."""

    COMMAND = (str(PYTHON), "manage.py", "run_worker")

    def __init__(self, count: int, concurrency: int, label: str) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        socket_dir = Path(settings.VAR_DIR) / "workers"
        if connection.vendor == "sqlite" and socket_dir.is_dir():
            for stale in socket_dir.glob("*.sock"):  # left by workers of an earlier run
                stale.unlink(missing_ok=True)
        for index in range(count):
            path = WORK / f"worker-{label}-{index}.log"
            with path.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        [*self.COMMAND, "--concurrency", str(concurrency)],
                        cwd=PROJECT,
                        env=dict(os.environ),
                        stdout=out,
                        stderr=out,
                    )
                )
            self.logs.append(path)
        self._wait_ready()
        self.cpu_at_start = self.cpu()

    def _listening(self) -> int:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query = 'LISTEN clientdesk_work'"
                )
                return int(cursor.fetchone()[0])
        socket_dir = Path(settings.VAR_DIR) / "workers"
        names = [p.name for p in socket_dir.glob("*.sock")] if socket_dir.is_dir() else []
        return sum(any(n.startswith(f"{p.pid}-") for n in names) for p in self.processes)

    def _wait_ready(self) -> None:
        """Until every worker waits for wake-ups (LISTEN, or its socket bound)."""
        deadline = time.monotonic() + 60
        while self._listening() < len(self.processes):
            for process in self.processes:
                if process.poll() is not None:
                    raise SystemExit(f"a worker exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start listening within 60 s")
            time.sleep(0.1)
        time.sleep(0.5)  # from LISTEN to the first wait: one idle look at the queue

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) or 0.0 for p in self.processes)

    def stop(self) -> dict[str, Any]:
        used = self.cpu() - self.cpu_at_start
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=30))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        text = "".join(path.read_text(errors="replace") for path in self.logs)
        return {
            "cpu_seconds": round(used, 2),
            "exit_codes": codes,
            "log_tracebacks": text.count("Traceback"),
            "log_errors": text.count("ERROR"),
        }


# --- checks -----------------------------------------------------------------------------------


def arrivals_check(
    records: list[tuple[float, str, str | None, bool]], expected_ids: set[str]
) -> dict[str, Any]:
    """Every expected webhook-id exactly once, nothing else, every signature valid. The
    ledger's own audit.checkpoint webhooks (a worker signs one when the ledger grew) are not
    the messages measured here and are left out."""
    ledger = set(
        Delivery.objects.filter(payload__type="audit.checkpoint").values_list(
            "webhook_id", flat=True
        )
    )
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
    deadline = time.monotonic() + timeout
    open_statuses = [DeliveryStatus.PENDING, DeliveryStatus.SENDING]
    while time.monotonic() < deadline:
        if not Delivery.objects.filter(id__in=ids, status__in=open_statuses).exists():
            return True
        time.sleep(0.1)
    return False


# --- throughput -------------------------------------------------------------------------------


def drain_with_workers(
    admin: User,
    receiver: Receiver,
    items: list[tuple[Client, Message]],
    workers: int,
    concurrency: int,
) -> dict[str, Any]:
    reset_tables()
    configure_endpoint(admin, receiver)
    pool = Workers(workers, concurrency, f"drain{workers}")
    xacts_before = xact_commits()
    sampler = WaitSampler()
    sampler.start()
    rows, committed, enqueue_seconds = enqueue(items)
    n = len(rows)
    ids = [row.id for row in rows]
    arrived = receiver.wait_for(n, timeout=600)
    settled = wait_settled(ids, timeout=120)
    finished = time.time()
    waits = sampler.stop()
    worker_info = pool.stop()
    time.sleep(1.0)  # exited backends have flushed their statistics
    xacts = xact_commits() - xacts_before
    records, receiver_cpu = receiver.records()

    delivered = sorted(
        t.timestamp()
        for t in Delivery.objects.filter(id__in=ids, delivered_at__isnull=False).values_list(
            "delivered_at", flat=True
        )
    )
    first_start = min(
        t.timestamp()
        for t in DeliveryAttempt.objects.filter(delivery_id__in=ids).values_list(
            "started_at", flat=True
        )
    )
    last = delivered[-1] if delivered else finished
    drain = last - committed
    lo, hi = delivered[len(delivered) // 10], delivered[(len(delivered) * 9) // 10]
    out = {
        "workers": workers,
        "concurrency_each": concurrency,
        "total_concurrency": workers * concurrency,
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
        f"{workers} worker(s) x {concurrency}: {n} deliveries in {drain:.2f} s = "
        f"{out['per_second']}/s; exactly once: {out['receiver']['exactly_once']}"
    )
    return out


async def _post_all(
    items: list[tuple[str, str]], secret: str, url: str, concurrency: int
) -> tuple[Counter[str], float]:
    webhook = Webhook(secret)
    statuses: Counter[str] = Counter()
    queue = iter(items)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
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
        await asyncio.gather(*(runner() for _ in range(concurrency)))
        return statuses, time.perf_counter() - started


def drain_with_httpx(
    admin: User, receiver: Receiver, bodies: list[tuple[str, str]], concurrency: int
) -> dict[str, Any]:
    """The same signed payloads, posted by a bare async client: what the path itself allows."""
    secret = configure_endpoint(admin, receiver)
    cpu_before = time.process_time()
    statuses, elapsed = asyncio.run(_post_all(bodies, secret, receiver.url, concurrency))
    cpu = time.process_time() - cpu_before
    records, receiver_cpu = receiver.records()
    n = len(bodies)
    out = {
        "total_concurrency": concurrency,
        "deliveries": n,
        "elapsed_s": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        "statuses": dict(statuses),
        "client_cpu_seconds": round(cpu, 2),
        "receiver": arrivals_check(records, {webhook_id for webhook_id, _ in bodies}),
        "receiver_cpu_seconds": receiver_cpu,
    }
    log(
        f"baseline httpx x {concurrency}: {n} in {elapsed:.2f} s = {out['per_second']}/s; "
        f"exactly once: {out['receiver']['exactly_once']}"
    )
    return out


def throughput(
    args: argparse.Namespace, admin: User, agent: User, receiver: Receiver
) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        raise SystemExit("the throughput part runs on PostgreSQL")
    clients = sample_clients(2_000, args.count, datagen.SEED + 5)
    items = payloads(agent, clients, args.deliveries)
    # The baseline posts exactly what a worker posts for these messages (channels.webhook_body).
    bodies = [
        (f"msg_{uuid.uuid4().hex}", webhook_body(Delivery(payload=webhook_payload(message))))
        for _, message in items
    ]
    parts: dict[str, Any] = {"workers": [], "baseline": []}
    for count in args.worker_counts:
        total = count * args.worker_concurrency
        parts["baseline"].append(drain_with_httpx(admin, receiver, bodies, total))
        parts["workers"].append(
            drain_with_workers(admin, receiver, items, count, args.worker_concurrency)
        )
    return parts


# --- sending at a steady rate -----------------------------------------------------------------


def send_paced(
    agent: User, clients: list[str], rate: float, seconds: float
) -> list[dict[str, Any]]:
    """Send messages through the app's `message_send`, one every 1/rate s, for `seconds`.

    `before` is taken just before the call and `committed` just after it returns: the send's
    transaction has committed by then, so `committed` is at most a return path late."""
    rng = random.Random(datagen.SEED + 9)
    sent = []
    count = round(seconds * rate)
    start = time.perf_counter()
    for i in range(count):
        pause = start + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        before = time.time()
        result = message_send(
            sender=agent,
            client_id=rng.choice(clients),
            idempotency_key=str(uuid.uuid4()),
            meta=RequestMeta(ip="127.0.0.1", user_agent=USER_AGENT, request_id=uuid.uuid4().hex),
            body=BODY,
        )
        committed = time.time()
        sent.append({"id": str(result.message_id), "before": before, "committed": committed})
    return sent


# --- idle cost --------------------------------------------------------------------------------

IDLE_CASES = (
    ("endpoint enabled, empty queue", True, 0, 0.0),
    ("endpoint disabled, empty queue, sending 10/s", False, 0, 10.0),
    ("endpoint disabled, 100 webhook deliveries queued, sending 10/s", False, 100, 10.0),
)


def idle_cost(
    args: argparse.Namespace, admin: User, agent: User, receiver: Receiver
) -> dict[str, Any]:
    """One worker with nothing it may do, for `seconds`. Deliveries queued while the endpoint
    is disabled must wait untouched; sends go on meanwhile (they queue no webhook delivery
    while the endpoint is disabled) and are timed, to see whether the worker gets in their way.
    """
    seconds = 5.0
    picked = sample_clients(200, args.count, datagen.SEED + 6)
    clients = [str(c.id) for c in picked]
    out = {}
    for case, enabled, queued, rate in IDLE_CASES:
        reset_tables()
        configure_endpoint(admin, receiver)
        if queued:
            enqueue(payloads(agent, picked, queued))
        if not enabled:
            endpoint_configure(user=admin, url=receiver.url, enabled=False)
        pool = Workers(1, args.worker_concurrency, "idle")
        time.sleep(2.0)  # statistics of the start-up have been flushed
        before = xact_commits()
        cpu_before = pool.cpu()
        started = time.perf_counter()
        sent = send_paced(agent, clients, rate, seconds) if rate else []
        time.sleep(max(0.0, seconds - (time.perf_counter() - started)))
        elapsed = time.perf_counter() - started
        cpu = pool.cpu() - cpu_before
        xacts = xact_commits() - before
        info = pool.stop()
        out[case] = {
            "seconds": round(elapsed, 2),
            "db_transactions_per_second": round(xacts / elapsed, 1)
            if connection.vendor == "postgresql"
            else None,
            "worker_cpu_share_of_one_core": round(cpu / elapsed, 3),
            "messages_sent": len(sent),
            "message_send_call": summary_ms([s["committed"] - s["before"] for s in sent]),
            "attempts_made": DeliveryAttempt.objects.count(),
            "receiver_requests": receiver.count(),
            "worker_processes": info,
        }
        log(f"idle, {case}: {out[case]}")
    return out


# --- latency ----------------------------------------------------------------------------------


def latency(
    args: argparse.Namespace, admin: User, agent: User, receiver: Receiver
) -> dict[str, Any]:
    reset_tables()
    configure_endpoint(admin, receiver)
    clients = [str(c.id) for c in sample_clients(1_000, args.count, datagen.SEED + 8)]
    pool = Workers(1, args.worker_concurrency, f"latency-{connection.vendor}")
    send_paced(agent, clients, args.rate, args.latency_warmup)
    warm = Message.objects.count()
    sent = send_paced(agent, clients, args.rate, args.latency_duration)
    total = warm + len(sent)
    # The messages' deliveries settle first; the receiver then holds them and any ledger
    # checkpoint the worker sent meanwhile (arrivals_check leaves those out).
    ids = list(Delivery.objects.filter(payload__type="message.sent").values_list("id", flat=True))
    settled = wait_settled(ids, timeout=120)
    checkpoints = Delivery.objects.filter(payload__type="audit.checkpoint").count()
    arrived = receiver.wait_for(total + checkpoints, timeout=60)
    worker_info = pool.stop()
    records, receiver_cpu = receiver.records()

    arrival = {mid: t for t, _, mid, _ in records if mid}
    started = dict(
        DeliveryAttempt.objects.filter(number=1).values_list("delivery__subject_id", "started_at")
    )
    to_arrival, to_attempt, send_time = [], [], []
    for s in sent:
        send_time.append(s["committed"] - s["before"])
        if s["id"] in arrival:
            to_arrival.append(arrival[s["id"]] - s["committed"])
        first = started.get(uuid.UUID(s["id"]))
        if first is not None:
            to_attempt.append(first.timestamp() - s["committed"])
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
        "send_to_first_attempt": summary_ms(to_attempt),
        "send_to_arrival": summary_ms(to_arrival),
        "message_send_call": summary_ms(send_time),
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
    parser.add_argument("--parts", default="throughput,idle,latency")
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument(
        "--worker-counts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--latency-duration", type=float, default=20.0)
    parser.add_argument("--latency-warmup", type=float, default=2.0)
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]

    WORK.mkdir(parents=True, exist_ok=True)
    admin, agent = users()
    receiver = Receiver()
    report: dict[str, Any] = {
        "vendor": connection.vendor,
        "receiver": "bench/receiver.py: uvicorn 0.54 (h11, asyncio), 1 process, bare ASGI app",
        "db_pool_max_size_per_process": int(os.environ.get("CLIENTDESK_DB_POOL_SIZE", "10"))
        if connection.vendor == "postgresql"
        else None,
    }
    try:
        for part in parts:
            log(f"part: {part}")
            runner = {"throughput": throughput, "idle": idle_cost, "latency": latency}[part]
            report[part] = runner(args, admin, agent, receiver)
    finally:
        receiver.stop()
        # Leave the bench database as the send benchmark expects it: no endpoint.
        OutgoingEndpoint.objects.all().delete()
    args.out.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
