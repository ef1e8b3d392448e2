"""Broadcasts: a 100,000-recipient broadcast from 202 to `completed`, and the database's own
speed at inserting the same rows.

`python bench/broadcast_bench.py [--clients N] [--workers K] [--fresh]` with DATABASE_URL naming
the bench database (default: a SQLite file under BENCH_VAR_DIR, else var/bench/).
- create: `broadcast_create` (the API's service: audience resolved, recipients stored) for every
  client, a template of two variables ({{ firstName }}, {{ plan }}); the time of the call.
- send: K `manage.py run_worker` processes started before the create; from the create's
  return to the broadcast's `completed_at`, recipients/s; each worker's peak RSS.
- reference: the same rows a broadcast writes (messages, timeline entries, webhook deliveries,
  ledger entries, live events) inserted from Python with `executemany`, no rendering, in
  transactions of the same size as the batches, then deleted; rows/s, and the ratio.
Checks that every recipient got exactly one message.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BENCH_VAR_DIR") or PROJECT / "var" / "bench")
VAR_DIR.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("DATABASE_URL", f"sqlite:///{VAR_DIR / 'broadcast.sqlite3'}")
os.environ.setdefault("CLIENTDESK_VAR_DIR", str(VAR_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
sys.path.insert(0, str(PROJECT / "src"))

import django

django.setup()

import contextlib

import psutil
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import AutoField, Model
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, ActivityType, ActorType, AuditEntry
from clientdesk.audit.services import audit_build
from clientdesk.clients.models import Client
from clientdesk.core.models import LiveEvent
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Channel, Delivery, OutgoingEndpoint
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.templates import template_create
from clientdesk.outreach.services import BATCH, broadcast_create, broadcast_request_parse

TEMPLATE = "Hello {{ firstName }}, your {{ plan }} statement is ready in your online cabinet."


def say(message: str) -> None:
    print(f"  [broadcast/{connection.vendor}] {message}", flush=True)


def prepare(clients: int, fresh: bool) -> User:
    if fresh and connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0, interactive=False)
    have = Client.objects.count()
    if have < clients:
        say(f"adding {clients - have:,} clients")
        batch = []
        for n in range(have, clients):
            client = Client(
                external_id=f"B{n:07d}",
                first_name=f"Name{n}",
                last_name=f"Family{n % 977}",
                email=f"c{n}@example.com",
                language="en",
                attributes={"plan": ("basic", "plus", "pro")[n % 3]},
            )
            client.refresh_derived()
            batch.append(client)
            if len(batch) == 5_000:
                Client.objects.bulk_create(batch)
                batch = []
        Client.objects.bulk_create(batch)
    manager, _ = User.objects.update_or_create(
        username="bench-broadcaster", defaults={"first_name": "Bench", "is_active": True}
    )
    manager.groups.set([Group.objects.get(name="Manager")])
    # Deliveries are written (a configured endpoint) but wait: the endpoint is disabled, so the
    # workers spend their time on the broadcast, not on posting 100,000 webhooks.
    if not OutgoingEndpoint.objects.exists():
        OutgoingEndpoint.objects.create(url="https://example.invalid/hook", enabled=False)
    return User.objects.get(pk=manager.pk)


def worker(env: dict[str, str], n: int) -> subprocess.Popen[bytes]:
    log = (VAR_DIR / f"worker-{n}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(PROJECT / "manage.py"), "run_worker"],
        env=env,
        stdout=log,
        stderr=log,
    )


def send(manager: User, workers: int) -> dict[str, float]:
    from clientdesk.messaging.selectors import templates_readable

    template = templates_readable(user=manager, query="bench broadcast", with_inactive=True)
    existing = [t for t in template if t.name == "Bench broadcast"]
    if existing:
        template_id = existing[0].pk
    else:
        template_id = template_create(
            author=manager, name="Bench broadcast", body=TEMPLATE, language="en"
        ).template_id
    env = {**os.environ}
    procs = [worker(env, n) for n in range(workers)]
    time.sleep(5)  # Django loaded in each, idle
    rss = {p.pid: 0 for p in procs}
    try:
        request = broadcast_request_parse(
            {
                "audience": {"search": "example.com"},
                "template_id": str(template_id),
                "category": "service",
            }
        )
        started = time.perf_counter()
        broadcast, _ = broadcast_create(
            actor=manager, request=request, idempotency_key=str(uuid.uuid4()), meta=RequestMeta()
        )
        created = time.perf_counter()
        say(f"create: {broadcast.recipients:,} recipients in {created - started:.2f} s")
        while True:
            broadcast.refresh_from_db()
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss[p.pid] = max(rss[p.pid], psutil.Process(p.pid).memory_info().rss)
            if broadcast.status == "completed":
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker died")
            time.sleep(0.1)
        assert broadcast.completed_at is not None
        seconds = (broadcast.completed_at - broadcast.created_at).total_seconds()
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
    written = Message.objects.filter(broadcast_id=broadcast.pk)
    assert written.count() == broadcast.sent == broadcast.recipients
    assert written.values("client_id").distinct().count() == broadcast.sent
    rate = broadcast.recipients / seconds
    say(
        f"send: {broadcast.recipients:,} in {seconds:.2f} s = {rate:,.0f} recipients/s with "
        f"{workers} worker(s), peak RSS {max(rss.values()) / 2**20:.0f} MB"
    )
    return {
        "create_s": round(created - started, 3),
        "send_s": round(seconds, 3),
        "recipients_per_s": round(rate),
        "worker_rss_mb": round(max(rss.values()) / 2**20),
    }


def _insert(model: type[Model], objects: list[Model]) -> None:
    """`executemany` of the objects' columns as Django would store them."""
    fields = [
        f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, AutoField))
    ]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = (
        f"INSERT INTO {model._meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    )
    rows = [[f.get_db_prep_save(f.pre_save(o, True), connection) for f in fields] for o in objects]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def reference(count: int) -> dict[str, float]:
    """What a broadcast writes per recipient, inserted plainly: a message, a timeline entry, a
    webhook delivery, a ledger entry and a live event, `executemany` per table, BATCH rows a
    transaction, no rendering (the text is the same for all); deleted afterwards."""
    clients = list(Client.objects.values_list("pk", flat=True)[:count])
    manager = User.objects.get(username="bench-broadcaster")
    broadcast_id = uuid.uuid4()
    body = "Hello Name, your plus statement is ready in your online cabinet."
    first_live = LiveEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    message_ids: list[uuid.UUID] = []
    started = time.perf_counter()
    for start in range(0, len(clients), BATCH):
        now = timezone.now()
        messages = [
            Message(
                client_id=pk,
                sender=manager,
                body=body,
                source=TEMPLATE,
                created_at=now,
                broadcast_id=broadcast_id,
            )
            for pk in clients[start : start + BATCH]
        ]
        with transaction.atomic():
            _insert(Message, messages)
            _insert(
                ActivityEvent,
                [
                    ActivityEvent(
                        client_id=m.client_id,
                        type=ActivityType.MESSAGE_SENT,
                        actor_type=ActorType.STAFF,
                        actor_user=manager,
                        actor_label=manager.display_name,
                        created_at=now,
                        subject_id=m.id,
                        data={"message_id": str(m.id), "body": body},
                    )
                    for m in messages
                ],
            )
            _insert(
                Delivery,
                [
                    Delivery(
                        channel=Channel.WEBHOOK,
                        client_id=m.client_id,
                        subject_id=m.id,
                        payload={"type": "message.sent", "data": {"body": body}},
                        next_attempt_at=now,
                        created_at=now,
                    )
                    for m in messages
                ],
            )
            _insert(
                AuditEntry,
                [
                    audit_build(
                        actor=manager,
                        action="message.sent",
                        object_type="message",
                        object_id=m.id,
                        created_at=now,
                        data={"client_id": str(m.client_id)},
                    )
                    for m in messages
                ],
            )
            _insert(
                LiveEvent,
                [
                    LiveEvent(
                        client_id=m.client_id,
                        type="message.created",
                        data={"id": str(m.id), "body": body},
                        created_at=now,
                    )
                    for m in messages
                ],
            )
        message_ids += [m.id for m in messages]
    seconds = time.perf_counter() - started
    with transaction.atomic():
        LiveEvent.objects.filter(id__gt=first_live, type="message.created").delete()
        AuditEntry.objects.filter(object_id__in=[str(i) for i in message_ids]).delete()
        Delivery.objects.filter(subject_id__in=message_ids).delete()
        ActivityEvent.objects.filter(subject_id__in=message_ids).delete()
        Message.objects.filter(broadcast_id=broadcast_id).delete()
    rate = len(clients) / seconds
    say(f"reference (executemany, 5 tables): {len(clients):,} in {seconds:.2f} s = {rate:,.0f}/s")
    return {"reference_s": round(seconds, 3), "reference_per_s": round(rate)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    manager = prepare(args.clients, args.fresh)
    result = {"clients": args.clients, "workers": args.workers, **send(manager, args.workers)}
    result.update(reference(args.clients))
    result["ratio"] = round(result["recipients_per_s"] / result["reference_per_s"], 3)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
