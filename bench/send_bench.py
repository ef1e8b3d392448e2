"""API sends on PostgreSQL under the production web server, beside two raw psycopg references
built from what a real send executes (method: docs/PERFORMANCE.md, "Method", Send).

    DATABASE_URL=... python bench/send_bench.py --out FILE [--duration 20] [--connections 8]

1. Capture: one in-process send (test client, bearer token; after a warm-up send) records every
   statement, its parameters, whether it ran in the transaction, and the rows it returned.
2. The app: the Procfile's `web` command; wrk (bench/send.lua) POSTs messages with a fresh
   Idempotency-Key to random clients. Server and database CPU per send from psutil.
3. "replay": the captured statements replayed by psycopg connections with fresh values (new
   UUIDs but the sender's, a random client, timestamps moved to now, new 64-hex values, and
   values an earlier statement returned replaced by what it returns now, + 1 included).
4. "rows only": only the captured INSERTs of the transaction; returned values become fresh
   unique numbers. Tables are emptied before each part; after the app's the ledger must verify.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import itertools
import json
import os
import pstats
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

# The test client's host; the endpoint (a send writes its delivery) is on 127.0.0.1.
common.setup_django(
    ALLOWED_HOSTS="127.0.0.1,localhost,testserver", CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1"
)

import psycopg
from django.db import connection
from django.test import Client as TestClient
from psycopg.types.json import Jsonb

from clientdesk.accounts.services import api_token_create
from clientdesk.audit.selectors import audit_verify
from clientdesk.audit.services import audit_sequence
from clientdesk.clients.models import Client
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.messaging.models import Message

WEB = "granian --interface wsgi clientdesk.wsgi:application --workers 2 --blocking-threads 8"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Step:
    sql: str
    params: Any
    in_transaction: bool
    rows: list[tuple[Any, ...]]


def post(http: TestClient, token: str, client_id: str) -> Any:
    return http.post(
        f"/api/v1/clients/{client_id}/messages",
        {"body": common.BODY},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )


def capture(token: str, client_id: str) -> list[Step]:
    steps: list[Step] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        cursor = context["cursor"].cursor
        rows = cursor.fetchall() if cursor.description is not None else []
        if rows:
            cursor.scroll(0, mode="absolute")  # the ORM reads them again
        steps.append(Step(sql, params, connection.in_atomic_block, rows))
        return result

    http = TestClient()
    assert post(http, token, client_id).status_code == 201
    with connection.execute_wrapper(record):
        assert post(http, token, client_id).status_code == 201
    return steps


def profile_sends(token: str, client_ids: list[str], n: int) -> str:
    """cProfile of `n` in-process sends, own CPU time by package (where the CPU goes)."""
    http = TestClient()
    post(http, token, client_ids[0])
    profiler = cProfile.Profile(time.process_time)  # CPU, not time spent waiting
    profiler.enable()
    for i in range(n):
        post(http, token, client_ids[i % len(client_ids)])
    profiler.disable()
    own: Counter[str] = Counter()
    for (path, _, _), (_, _, tottime, _, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        match = re.search(r"site-packages/([a-z_]+)|/(clientdesk)/([a-z_]+)", path)
        label = (match[1] or f"{match[2]}.{match[3]}") if match else "python (stdlib, builtins)"
        own[label] += tottime
    total = sum(own.values())
    lines = [
        f"{n} sends: {total / n * 1000:.2f} ms CPU each (under cProfile); own time by package:"
    ]
    for label, seconds in own.most_common(12):
        lines.append(f"  {label:34} {seconds / n * 1000:6.2f} ms  {seconds / total:5.1%}")
    return "\n".join(lines)


def _mappable(v: Any) -> bool:
    return isinstance(v, int | str | uuid.UUID) and not isinstance(v, bool)


def _flat(params: Any) -> list[Any]:
    return [x for p in params for x in _flat(p)] if isinstance(params, list | tuple) else [params]


def _walk(value: Any, leaf: Any) -> Any:
    if isinstance(value, Jsonb):
        return Jsonb(_walk(value.obj, leaf), dumps=value.dumps)
    if isinstance(value, dict):
        return {k: _walk(v, leaf) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_walk(v, leaf) for v in value)
    return leaf(value)


class Replay:
    def __init__(self, steps: list[Step], keep: set[Any], client_id: str, rows_only: bool):
        inserts = [s for s in steps if s.in_transaction and s.sql.startswith("INSERT")]
        self.steps = inserts if rows_only else steps
        self.keep = {str(k) for k in keep}
        self.client_id = client_id
        self.rows_only = rows_only
        self.captured_at = max(
            (p for s in steps for p in _flat(s.params) if isinstance(p, dt.datetime)),
            default=dt.datetime.now(dt.UTC),
        )
        self.returned = {v for s in steps for row in s.rows for v in row if _mappable(v)}
        # Fresh values for ids the rows-only inserts cannot read back: above any real id, and
        # within a 32-bit integer column (a small returned id can equal a count or a version).
        self.counter = itertools.count(10**9 + random.randrange(10**4) * 10**5)

    def run(self, conn: psycopg.Connection[Any], client_id: str) -> None:
        fresh: dict[Any, Any] = {
            self.client_id: client_id,
            uuid.UUID(self.client_id): uuid.UUID(client_id),
        }
        shift = dt.datetime.now(dt.UTC) - self.captured_at
        for in_transaction, steps in itertools.groupby(self.steps, lambda s: s.in_transaction):
            with conn.transaction() if in_transaction else contextlib.nullcontext():
                for step in steps:
                    params = _walk(step.params, lambda v: self.value(v, fresh, shift))
                    cur = conn.execute(step.sql, params)
                    rows = cur.fetchall() if step.rows and not self.rows_only else []
                    for old_row, new_row in zip(step.rows, rows, strict=False):
                        for old, new in zip(old_row, new_row, strict=True):
                            if _mappable(old) and old != new:
                                fresh[old] = new

    def value(self, v: Any, fresh: dict[Any, Any], shift: dt.timedelta) -> Any:
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, dt.datetime):
            return v + shift
        if _mappable(v) and v in fresh:
            return fresh[v]
        if isinstance(v, int) and (v in self.returned or v - 1 in self.returned):
            if self.rows_only:
                return fresh.setdefault(v, next(self.counter))
            if v - 1 in fresh and isinstance(fresh[v - 1], int):
                return fresh[v - 1] + 1
            return v
        if isinstance(v, uuid.UUID):
            return v if str(v) in self.keep else fresh.setdefault(v, uuid.uuid4())
        if isinstance(v, str):
            if HEX64.fullmatch(v) and v not in self.returned:
                return fresh.setdefault(v, os.urandom(32).hex())
            return UUID_RE.sub(lambda m: self._uuid_text(m[0], fresh), v)
        return v

    def _uuid_text(self, text: str, fresh: dict[Any, Any]) -> str:
        if text not in self.keep and text not in fresh:
            fresh[text] = str(fresh.get(uuid.UUID(text)) or uuid.uuid4())
            fresh.setdefault(uuid.UUID(text), uuid.UUID(fresh[text]))
        return text if text in self.keep else str(fresh[text])


def run_replay(replay: Replay, clients: list[str], connections: int, seconds: float) -> Any:
    counts, errors, stop = [0] * connections, [], time.monotonic() + seconds

    def work(i: int) -> None:
        rng = random.Random(i)
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while time.monotonic() < stop:
                try:
                    replay.run(conn, rng.choice(clients))
                    counts[i] += 1
                except psycopg.Error as error:
                    errors.append(repr(error)[:300])

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    count = sum(counts)
    return {"per_second": round(count / elapsed, 1), "count": count, "errors": errors[:5]}


def bench_backends() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {pid for (pid,) in cursor.fetchall()} - {connection.connection.info.backend_pid}


def run_app(token: str, clients: list[str], connections: int, seconds: int) -> dict[str, Any]:
    script = common.RESULTS_DIR / "send.lua"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        (common.BENCH_DIR / "send.lua")
        .read_text()
        .replace("TOKEN", token)
        .replace("CLIENTS", ", ".join(f'"{c}"' for c in clients))
        .replace("BODY", json.dumps({"body": common.BODY}).replace('"', '\\"'))
    )
    port = common.free_port()
    env = common.django_env(os.environ["DATABASE_URL"])
    with common.served(
        f"{WEB} --port {port}", port, env, common.RESULTS_DIR / "send-web.log"
    ) as web:
        url = f"http://127.0.0.1:{port}/"
        common.wrk(url, duration=3, connections=connections, script=script)
        common.empty_sent_tables()
        backends = bench_backends()
        cpu_web = common.cpu_seconds(web.pid, children=True)
        cpu_db = sum(common.cpu_seconds(pid) for pid in backends)
        other = common.OtherWork()
        out = common.wrk(url, duration=seconds, connections=connections, script=script)
        machine = other.finish(ours=backends)
        cpu_web = common.cpu_seconds(web.pid, children=True) - cpu_web
        cpu_db = sum(common.cpu_seconds(pid) for pid in bench_backends()) - cpu_db
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    created = total - (int(failed[1]) if failed else 0)
    saved = Message.objects.count()
    audit_sequence()  # what the worker does moments after each send
    return {
        "per_second": round(created / seconds, 1),
        "created": created,
        "non_2xx": total - created,
        "socket_errors": errors[0] if errors else None,
        "latency": re.findall(r"\s+(50|90|99)(?:\.000)?%\s+(\S+)", out),
        "messages_saved": saved,
        "ledger": str(audit_verify()),
        "server_cpu_ms_per_send": round(cpu_web / max(created, 1) * 1000, 2),
        "database_cpu_ms_per_send": round(cpu_db / max(created, 1) * 1000, 2),
        "machine": machine,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--profile", type=int, default=200, help="sends to profile (0: none)")
    args = parser.parse_args()

    admin, agent = common.bench_users()
    # A send then writes one webhook delivery, as in production (no worker runs here).
    endpoint_configure(user=admin, url="http://127.0.0.1:9/hook", enabled=True)
    ids = Client.objects.order_by("?").values_list("pk", flat=True)[: args.clients]
    clients = [str(pk) for pk in ids]
    token = api_token_create(user=agent)[1]
    common.empty_sent_tables()
    steps = capture(token, clients[0])
    in_tx = sum(s.in_transaction for s in steps)
    print(f"  a send runs {len(steps)} statements ({in_tx} in its transaction, + BEGIN, COMMIT)")
    result: dict[str, Any] = {
        "statements": [s.sql[:200] for s in steps],
        "profile": profile_sends(token, clients, args.profile) if args.profile else None,
    }
    print(result["profile"] or "", flush=True)
    for name, rows_only in (("replay", False), ("rows_only", True)):
        common.empty_sent_tables()
        replay = Replay(steps, {agent.pk}, clients[0], rows_only)
        run_replay(replay, clients, args.connections, 2)
        result[name] = run_replay(replay, clients, args.connections, args.duration)
        print(f"  {name}: {result[name]}", flush=True)
    result["app"] = run_app(token, clients, args.connections, args.duration)
    print(f"  app: {result['app']}", flush=True)
    for ref in ("replay", "rows_only"):
        share = result["app"]["per_second"] / max(result[ref]["per_second"], 0.1)
        result[f"app_share_of_{ref}"] = round(share, 3)
    args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
