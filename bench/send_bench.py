"""API send throughput on PostgreSQL, beside a raw psycopg baseline doing the same writes.

Run by bench/run.py in a subprocess with DATABASE_URL naming the bench database:
`python bench/send_bench.py --out FILE [--duration 20] [--concurrency 8] [--workers 2]`.

0. The outgoing endpoint is removed (as in the first runs: a send then writes no Delivery row;
   the delivery benchmark measures deliveries).
1. An Agent user and a token from `manage.py create_api_token` (its last stdout line).
2. uvicorn serves clientdesk.asgi:application on a free port against the same database, with
   the app's settings (PostgreSQL through Django's connection pool, `max_size` from
   CLIENTDESK_DB_POOL_SIZE, default 10, per uvicorn worker process); its output goes to
   send-uvicorn.log, which is searched for errors afterwards. `--concurrency` threads, each
   with its own keep-alive httpx client, POST /api/v1/clients/{id}/messages with a fresh
   Idempotency-Key to random clients for `--duration` seconds after a short warm-up. Every
   0.25 s, pg_stat_activity says how many connections the app holds (this process's own
   are left out) and how many are running a statement.
3. Baseline: `--concurrency` psycopg connections, one transaction per message, writing
   the rows one send writes (idempotency key, message, activity event, the key's stored
   answer, then the ledger record, last, as the app now does), including the ledger's
   advisory lock, since the hash chain needs one writer at a time.
The message tables are emptied before each part, and the ledger is verified after each.
"""

# Django is set up (below) before anything imports a model.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
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

import django

django.setup()

import httpx
import psycopg
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client as DjangoTestClient
from django.test.utils import CaptureQueriesContext
from psycopg.types.json import Jsonb

import datagen
from clientdesk.accounts.models import ApiToken, User
from clientdesk.audit.models import ActivityEvent, ActorType, AuditRecord
from clientdesk.audit.selectors import audit_verify
from clientdesk.audit.services import GENESIS_HASH, record_hash
from clientdesk.delivery.models import Delivery, OutgoingEndpoint
from clientdesk.messaging.models import IdempotencyKey, Message
from common import PROJECT, PYTHON, summary_ms

USERNAME = "bench-agent"
BODY = "Hello {{ firstName }}, your monthly statement is ready in your online cabinet."
LEDGER_LOCK_KEY = 0x434C4443  # the key clientdesk.audit.services locks on
WARMUP_SECONDS = 3.0
MESSAGE_TABLES = (
    "messaging_idempotencykey",
    "messaging_message",
    "audit_activityevent",
    "audit_auditrecord",
)


def log(message: str) -> None:
    print(f"  [send] {message}", flush=True)


def setup_agent() -> tuple[User, str]:
    user, _ = User.objects.get_or_create(
        username=USERNAME, defaults={"first_name": "Bench", "last_name": "Agent"}
    )
    user.is_active = True
    user.save()
    user.groups.set([Group.objects.get(name="Agent")])
    ApiToken.objects.filter(user=user).delete()
    out = subprocess.run(
        [str(PYTHON), "manage.py", "create_api_token", USERNAME, "--name", "bench"],
        cwd=PROJECT,
        env=dict(os.environ),
        check=True,
        capture_output=True,
        text=True,
    )
    return user, out.stdout.strip().splitlines()[-1]


def reset_message_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(MESSAGE_TABLES)} CASCADE")


def remove_endpoint() -> int:
    """As in the earlier runs: no outgoing endpoint, so a send writes no Delivery rows (the
    delivery benchmark configures one and removes it again; this makes sure)."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE delivery_deliveryattempt, delivery_delivery")
    deleted, _ = OutgoingEndpoint.objects.all().delete()
    return deleted


def sample_clients(count: int, clients: int) -> list[tuple[str, str]]:
    rng = random.Random(datagen.SEED + 1)
    wanted = [f"CRM-{rng.randint(1, clients):07d}" for _ in range(count)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, first_name FROM clients_client WHERE external_id = ANY(%s)", [wanted]
        )
        return [(str(pk), first) for pk, first in cursor.fetchall()]


def queries_per_send(token: str, client_id: str) -> list[str]:
    """The SQL one API send runs, captured in-process through the same URL and middleware."""
    http = DjangoTestClient(HTTP_HOST="127.0.0.1")
    with CaptureQueriesContext(connection) as captured:
        response = http.post(
            f"/api/v1/clients/{client_id}/messages",
            data=json.dumps({"body": BODY}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
    if response.status_code != 201:
        raise SystemExit(f"probe send failed: {response.status_code} {response.content[:300]!r}")
    return [q["sql"][:160] for q in captured.captured_queries]


# --- load runner -----------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.lock = threading.Lock()

    def add(self, seconds: float, status: str, error: str | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if error is None:
                self.latencies.append(seconds)
            elif len(self.error_samples) < 5:
                self.error_samples.append(error[:300])


def run_threads(worker: Any, concurrency: int, seconds: float) -> tuple[Recorder, float]:
    """Start `concurrency` threads running `worker(index, deadline, recorder)`."""
    recorder = Recorder()
    start_gate = threading.Barrier(concurrency + 1)
    holder: dict[str, float] = {}

    def body(index: int) -> None:
        start_gate.wait()
        worker(index, holder["deadline"], recorder)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    holder["deadline"] = started + seconds
    start_gate.wait()
    for thread in threads:
        thread.join()
    return recorder, time.perf_counter() - started


def result(recorder: Recorder, elapsed: float, ok_status: str) -> dict[str, Any]:
    ok = recorder.statuses.get(ok_status, 0)
    errors = sum(recorder.statuses.values()) - ok
    return {
        "ok": ok,
        "errors": errors,
        "statuses": dict(recorder.statuses),
        "error_samples": recorder.error_samples,
        "elapsed_s": round(elapsed, 3),
        "per_second": round(ok / elapsed, 1),
        "latency": summary_ms(recorder.latencies),
    }


# --- API ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        str(PROJECT / ".venv" / "bin" / "uvicorn"),
        "clientdesk.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            command, cwd=PROJECT, env=dict(os.environ), stdout=log_file, stderr=log_file
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"uvicorn exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit("uvicorn did not answer /healthz within 60 s")


def pg_sessions() -> int:
    """Sessions ever established to this database (PostgreSQL 14+), from a fresh snapshot."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


class ConnectionSampler(threading.Thread):
    """Samples the bench database's connections every 0.25 s (pg_stat_activity), on its own link.

    Connections that were open before the server started (this process's own) are left out,
    so the counts are the app's: all of them, and those running a statement at that moment.
    """

    def __init__(self, exclude: set[int]) -> None:
        super().__init__(daemon=True)
        self.exclude = exclude
        self.peak = 0
        self.peak_active = 0
        self.samples: list[int] = []
        self.limit = 0
        self._halt = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            self.limit = int(conn.execute("SHOW max_connections").fetchone()[0])  # type: ignore[index]
            self.exclude.add(conn.info.backend_pid)
            self.ready.set()
            while not self._halt.is_set():
                rows = conn.execute(
                    "SELECT pid, state FROM pg_stat_activity "
                    "WHERE datname = current_database() AND backend_type = 'client backend'"
                ).fetchall()
                app = [state for pid, state in rows if pid not in self.exclude]
                self.samples.append(len(app))
                self.peak = max(self.peak, len(app))
                self.peak_active = max(self.peak_active, sum(s == "active" for s in app))
                self._halt.wait(0.25)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def summary(self) -> dict[str, Any]:
        values = self.samples
        return {
            "samples": len(values),
            "min": min(values, default=0),
            "median": sorted(values)[len(values) // 2] if values else 0,
            "max": self.peak,
            "max_active": self.peak_active,
        }


def own_backends() -> set[int]:
    """Backend pids connected to the bench database now (before the server starts)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend'"
        )
        return {int(row[0]) for row in cursor.fetchall()}


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def api_worker(base_url: str, token: str, clients: list[tuple[str, str]]) -> Any:
    def work(index: int, deadline: float, recorder: Recorder) -> None:
        rng = random.Random(index)
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "clientdesk-bench"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            while time.perf_counter() < deadline:
                client_id, _ = rng.choice(clients)
                started = time.perf_counter()
                try:
                    response = http.post(
                        f"/api/v1/clients/{client_id}/messages",
                        json={"body": BODY},
                        headers={"Idempotency-Key": str(uuid.uuid4())},
                    )
                except httpx.HTTPError as error:
                    recorder.add(0, type(error).__name__, repr(error))
                    continue
                elapsed = time.perf_counter() - started
                status = str(response.status_code)
                recorder.add(elapsed, status, None if status == "201" else response.text)

    return work


SERVER_ERROR_PATTERNS = (
    "Traceback",
    "too many clients",
    "PoolTimeout",
    "OperationalError",
    "Internal Server Error",
)


def bench_api(
    token: str,
    clients: list[tuple[str, str]],
    concurrency: int,
    seconds: float,
    workers: int,
    log_path: Path,
) -> dict[str, Any]:
    port = free_port()
    exclude = own_backends()
    server = start_server(port, workers, log_path)
    try:
        work = api_worker(f"http://127.0.0.1:{port}", token, clients)
        warm, _ = run_threads(work, concurrency, WARMUP_SECONDS)
        log(f"API warm-up: {sum(warm.statuses.values())} requests")
        sampler = ConnectionSampler(exclude)
        sampler.start()
        sampler.ready.wait(10)
        sessions_before = pg_sessions()  # after the sampler connected: count only the app's
        recorder, elapsed = run_threads(work, concurrency, seconds)
        sampler.stop()
        new_sessions = pg_sessions() - sessions_before
    finally:
        stop_server(server)
    out = result(recorder, elapsed, "201")
    out["pg_connections_max"] = sampler.peak
    out["pg_connections"] = sampler.summary()
    out["pg_max_connections_setting"] = sampler.limit
    out["pool_max_size_per_process"] = int(os.environ.get("CLIENTDESK_DB_POOL_SIZE", "10"))
    # Connections the app opened during the measured part (pg_stat_database.sessions).
    requests = sum(recorder.statuses.values())
    out["pg_sessions_opened"] = new_sessions
    out["pg_sessions_per_request"] = round(new_sessions / requests, 3) if requests else None
    out["warmup_requests"] = sum(warm.statuses.values())
    out["warmup_ok"] = warm.statuses.get("201", 0)
    out["warmup_statuses"] = dict(warm.statuses)
    out["uvicorn_workers"] = workers
    server_log = log_path.read_text(errors="replace")
    out["server_log_matches"] = {p: server_log.count(p) for p in SERVER_ERROR_PATTERNS}
    out["server_log_excerpt"] = server_log[-2000:]
    return out


# --- raw psycopg baseline --------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class RawInsert:
    """A plain INSERT for one model, its column list taken from the model once.

    The columns come from the model so the baseline keeps writing whole rows while the schema
    grows; columns a send does not set get the model's default, converted once up front.
    """

    def __init__(self, model: Any, given: set[str], returning: str | None = None) -> None:
        fields = [
            f
            for f in model._meta.concrete_fields
            if not (f.primary_key and f.attname not in given)  # auto-increment ids
        ]
        self.attnames = [f.attname for f in fields]
        self.defaults = {
            f.attname: f.get_db_prep_save(f.get_default(), connection)
            for f in fields
            if f.attname not in given
        }
        columns = ", ".join(f'"{f.column}"' for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        self.sql = f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES ({marks})'
        if returning:
            self.sql += f' RETURNING "{returning}"'

    def params(self, values: dict[str, Any]) -> list[Any]:
        return [values[a] if a in values else self.defaults[a] for a in self.attnames]


_INSERTS: dict[str, RawInsert] = {}


def raw_inserts() -> dict[str, RawInsert]:
    if not _INSERTS:
        _INSERTS["key"] = RawInsert(
            IdempotencyKey,
            {"user_id", "key", "fingerprint", "message_id", "response_body", "created_at"},
            returning="id",
        )
        _INSERTS["message"] = RawInsert(
            Message,
            {
                "id",
                "client_id",
                "direction",
                "sender_id",
                "body",
                "source",
                "variables",
                "idempotency_key",
                "request_ip",
                "user_agent",
                "request_id",
                "created_at",
            },
        )
        _INSERTS["activity"] = RawInsert(
            ActivityEvent,
            {
                "id",
                "client_id",
                "type",
                "actor_type",
                "actor_user_id",
                "actor_label",
                "subject_id",
                "data",
                "created_at",
            },
        )
        _INSERTS["audit"] = RawInsert(
            AuditRecord, {f.attname for f in AuditRecord._meta.concrete_fields} - {"id"}
        )
    return _INSERTS


def raw_send(conn: psycopg.Connection[Any], user: User, client_id: str, first_name: str) -> None:
    """One message's rows, as the send service writes them (ledger last), in one transaction."""
    inserts = raw_inserts()
    now = datetime.now(UTC)
    key = str(uuid.uuid4())
    message_id = uuid.uuid4()
    body = f"Hello {first_name}, your monthly statement is ready in your online cabinet."
    variables = {"firstName": first_name}
    fingerprint = hashlib.sha256(
        json.dumps({"client": client_id, "body": BODY, "template": None}, sort_keys=True).encode()
    ).hexdigest()
    request_id = uuid.uuid4().hex
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            inserts["key"].sql,
            inserts["key"].params(
                {
                    "user_id": user.pk,
                    "key": key,
                    "fingerprint": fingerprint,
                    "message_id": None,
                    "response_body": Jsonb({}),
                    "created_at": now,
                }
            ),
        )
        key_id = cur.fetchone()[0]  # type: ignore[index]
        cur.execute(
            inserts["message"].sql,
            inserts["message"].params(
                {
                    "id": message_id,
                    "client_id": client_id,
                    "direction": "out",
                    "sender_id": user.pk,
                    "body": body,
                    "source": BODY,
                    "variables": Jsonb(variables),
                    "idempotency_key": key,
                    "request_ip": "127.0.0.1",
                    "user_agent": "clientdesk-bench",
                    "request_id": request_id,
                    "created_at": now,
                }
            ),
        )
        cur.execute(
            inserts["activity"].sql,
            inserts["activity"].params(
                {
                    "id": uuid.uuid4(),
                    "client_id": client_id,
                    "type": "message.sent",
                    "actor_type": "staff",
                    "actor_user_id": user.pk,
                    "actor_label": user.display_name,
                    "subject_id": message_id,
                    "data": Jsonb({"message_id": str(message_id), "body": body}),
                    "created_at": now,
                }
            ),
        )
        representation = {
            "id": str(message_id),
            "client_id": client_id,
            "direction": "out",
            "body": body,
            "source": BODY,
            "variables": variables,
            "sender": {"id": str(user.pk), "username": user.username, "name": user.display_name},
            "created_at": _iso(now),
            "read_at": None,
            "deliveries": [],
        }
        cur.execute(
            "UPDATE messaging_idempotencykey SET message_id = %s, response_body = %s WHERE id = %s",
            [message_id, Jsonb(representation), key_id],
        )
        # Last, as in the app: the ledger lock serialises every send until commit.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_LOCK_KEY])
        cur.execute("SELECT sequence, hash FROM audit_auditrecord ORDER BY sequence DESC LIMIT 1")
        last = cur.fetchone()
        record = AuditRecord(
            sequence=last[0] + 1 if last else 1,
            created_at=now,
            actor_type=ActorType.STAFF,
            actor_id=str(user.pk),
            actor_label=user.display_name,
            action="message.sent",
            object_type="message",
            object_id=str(message_id),
            data={
                "client_id": client_id,
                "template_id": None,
                "template_version": None,
                "body_sha256": hashlib.sha256(body.encode()).hexdigest(),
                "ip": "127.0.0.1",
                "user_agent": "clientdesk-bench",
                "request_id": request_id,
            },
            prev_hash=last[1] if last else GENESIS_HASH,
        )
        record.hash = record_hash(record)
        values = {
            f.attname: getattr(record, f.attname)
            for f in AuditRecord._meta.concrete_fields
            if f.attname != "id"
        }
        values["data"] = Jsonb(record.data)
        cur.execute(inserts["audit"].sql, inserts["audit"].params(values))


def raw_worker(dsn: str, user: User, clients: list[tuple[str, str]]) -> Any:
    def work(index: int, deadline: float, recorder: Recorder) -> None:
        rng = random.Random(1000 + index)
        with psycopg.connect(dsn) as conn:
            while time.perf_counter() < deadline:
                client_id, first_name = rng.choice(clients)
                started = time.perf_counter()
                try:
                    raw_send(conn, user, client_id, first_name)
                except psycopg.Error as error:
                    recorder.add(0, type(error).__name__, repr(error))
                    continue
                recorder.add(time.perf_counter() - started, "commit")

    return work


def bench_raw(
    dsn: str, user: User, clients: list[tuple[str, str]], concurrency: int, seconds: float
) -> dict[str, Any]:
    work = raw_worker(dsn, user, clients)
    warm, _ = run_threads(work, concurrency, WARMUP_SECONDS)
    log(f"baseline warm-up: {sum(warm.statuses.values())} transactions")
    recorder, elapsed = run_threads(work, concurrency, seconds)
    out = result(recorder, elapsed, "commit")
    out["warmup_ok"] = warm.statuses.get("commit", 0)
    return out


def table_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in MESSAGE_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


def check(part: dict[str, Any], expected_messages: int) -> None:
    """Every acknowledged send is in the database, once, with its records and a sound ledger."""
    counts = table_counts()
    verdict = audit_verify()
    part["rows_after"] = counts
    part["ledger_intact"] = verdict.intact
    part["rows_match"] = all(n == expected_messages for n in counts.values())
    if not part["rows_match"] or not verdict.intact:
        log(f"CHECK FAILED: expected {expected_messages} of each, got {counts}; {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("send_bench runs on PostgreSQL only")

    endpoints_removed = remove_endpoint()
    user, token = setup_agent()
    clients = sample_clients(5_000, args.count)
    reset_message_tables()
    probe = queries_per_send(token, clients[0][0])
    reset_message_tables()
    log(f"{len(clients)} target clients; one API send runs {len(probe)} SQL statements")

    log(f"API: uvicorn --workers {args.workers}, {args.concurrency} clients x {args.duration} s")
    server_log = args.out.with_name("send-uvicorn.log")
    api = bench_api(token, clients, args.concurrency, args.duration, args.workers, server_log)
    check(api, api["warmup_ok"] + api["ok"])
    api["deliveries_written"] = Delivery.objects.count()
    log(
        f"API: {api['per_second']} req/s, {api['errors']} errors, "
        f"{api['pg_connections']['max']} connections at most"
    )

    reset_message_tables()
    dsn = os.environ["DATABASE_URL"]
    log(f"baseline: raw psycopg, {args.concurrency} connections x {args.duration} s")
    raw = bench_raw(dsn, user, clients, args.concurrency, args.duration)
    check(raw, raw["warmup_ok"] + raw["ok"])
    log(f"baseline: {raw['per_second']} tx/s, {raw['errors']} errors")

    report = {
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": WARMUP_SECONDS,
        "queries_per_send": len(probe),
        "outgoing_endpoints_removed_first": endpoints_removed,
        "send_sql": probe,
        "api": api,
        "raw_psycopg": raw,
    }
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
