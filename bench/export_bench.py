"""Export and send benchmarks for the audit issue, on SQLite and PostgreSQL.

    .venv/bin/python bench/export_bench.py [--rows 1000000] [--db sqlite|postgres ...]
        [--send-duration 15] [--skip-export] [--skip-send]

Databases: var/bench/export.sqlite3 and the PostgreSQL database `clientdesk_export_bench`
(created, migrated and filled on first use; kept for the next run).

1. Fill: 1,000 clients, one sender, `--rows` messages (bodies of 40-400 characters, a tenth of
   them replies) written straight to the tables (COPY on PostgreSQL, executemany on SQLite).
2. Export: `manage.py export_messages --format csv|ndjson -o FILE` in a child process: wall
   time, rows/s and the child's peak RSS. Beside it, in the same run, the database's own dump of
   the same columns: `COPY (SELECT ...) TO STDOUT` (CSV, and one JSON object per row) on
   PostgreSQL; the `sqlite3` shell's `-csv` / `-json` output on SQLite.
3. Sends: `--send-duration` seconds of `message_send` from 8 and 32 threads (one connection
   each), with today's append (an unsequenced entry; the sequencer runs afterwards) and with
   the append as it was before (advisory lock, read the chain's end, insert the chained record
   in the send's transaction; reproduced in `_install_locked_append`). Before each part the
   messages and ledger are emptied; after it the ledger is sequenced and verified.

Results: printed, and written to bench/results/export-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import PROJECT, PYTHON, RESULTS_DIR, VAR_DIR

PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
PG_DB = "clientdesk_export_bench"
PG_URL = f"{PG_SERVER}/{PG_DB}"
SQLITE_PATH = VAR_DIR / "export.sqlite3"
SQLITE_URL = f"sqlite:///{SQLITE_PATH}"
URLS = {"sqlite": SQLITE_URL, "postgres": PG_URL}

COLUMNS_SQL = """
    m.id, m.created_at, m.direction, c.id AS client_id, c.external_id,
    c.first_name || ' ' || c.last_name AS client_name, u.id AS sender_id,
    u.first_name || ' ' || u.last_name AS sender_name, m.body, m.template_id,
    m.template_version, m.read_at, 'none' AS reply_state,
    (SELECT {agg} FROM delivery_delivery d WHERE d.subject_id = m.id) AS delivery_status
  FROM messaging_message m
  JOIN clients_client c ON c.id = m.client_id
  LEFT JOIN accounts_user u ON u.id = m.sender_id
  ORDER BY m.created_at, m.id
"""


def env_for(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        CLIENTDESK_VAR_DIR=str(VAR_DIR),
        DJANGO_SETTINGS_MODULE="clientdesk.settings",
        DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def log(message: str) -> None:
    print(f"[export-bench] {message}", flush=True)


def child(script: str, url: str, *args: str) -> dict[str, Any]:
    """Run a piece of this file in a fresh process; it prints one JSON line last."""
    proc = subprocess.run(
        [str(PYTHON), __file__, "--child", script, *args],
        env=env_for(url),
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- children (Django set up) ----------------------------------------------------------------


def _setup() -> None:
    import django

    django.setup()


def child_fill(rows: int) -> dict[str, Any]:
    import random
    import uuid
    from datetime import timedelta

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from clientdesk.accounts.models import User
    from clientdesk.clients.models import Client
    from clientdesk.messaging.models import Message

    have = Message.objects.count()
    if have >= rows:
        return {"rows": have, "filled": 0}
    sender = User.objects.filter(username="bench-sender").first() or User.objects.create_user(
        username="bench-sender", first_name="Bea", last_name="Bench"
    )
    clients = list(Client.objects.filter(external_id__startswith="XB-")[:1000])
    if len(clients) < 1000:
        Client.objects.bulk_create(
            [
                Client(
                    external_id=f"XB-{n:05d}",
                    first_name="Zoë",
                    last_name=f"Müller{n}",
                    email=f"x{n}@example.com",
                    search_text="",
                    sort_name=f"muller{n}",
                )
                for n in range(1000)
            ],
            batch_size=1000,
        )
        clients = list(Client.objects.filter(external_id__startswith="XB-")[:1000])
    rng = random.Random(10)
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=have)
    words = [
        "statement",
        "ready",
        "please",
        "upload",
        "your",
        "documents",
        "thanks",
        "=cmd",
        "+1",
        ",",
        '"',
        "ünïcode",
    ]

    def row(i: int) -> Message:
        body = " ".join(rng.choice(words) for _ in range(rng.randint(6, 60)))
        reply = i % 10 == 9
        return Message(
            id=uuid.uuid4(),
            client_id=rng.choice(clients).id,
            direction="in" if reply else "out",
            sender_id=None if reply else sender.id,
            body=body,
            source=body,
            created_at=start + timedelta(seconds=i),
        )

    # Through the model, so columns added later get their defaults.
    t0 = time.perf_counter()
    todo = rows - have
    batch = 5000
    for offset in range(0, todo, batch):
        Message.objects.bulk_create(
            [row(have + offset + i) for i in range(min(batch, todo - offset))]
        )
    return {"rows": rows, "filled": todo, "fill_seconds": round(time.perf_counter() - t0, 1)}


def _install_locked_append() -> None:
    """The ledger append as it was before sequencing left the send path (commit 9eadbd7): take
    the advisory lock, read the chain's end, insert the chained record, all inside the send's
    transaction. Reproduced here so both ways run against today's schema and code."""
    import json
    import sys as _sys

    from django.db import connection

    from clientdesk.audit import services
    from clientdesk.audit.models import ActorType, AuditRecord

    original = services.audit_append

    def locked_append(*, actor, action, object_type, object_id, created_at, data=None):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [services._LEDGER_LOCK_KEY])
        last = AuditRecord.objects.order_by("-sequence").only("sequence", "hash").first()
        record = AuditRecord(
            sequence=(last.sequence + 1) if last else 1,
            created_at=created_at,
            actor_type=ActorType.STAFF if actor else ActorType.SYSTEM,
            actor_id=str(actor.pk) if actor else "",
            actor_label=actor.display_name if actor else "Clientdesk",
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            data=json.loads(json.dumps(data or {}, default=str)),
            prev_hash=last.hash if last else services.GENESIS_HASH,
        )
        record.hash = services.record_hash(record)
        record.save(force_insert=True)
        return record

    for module in list(_sys.modules.values()):
        if getattr(module, "audit_append", None) is original:
            module.audit_append = locked_append


def child_sends(threads: int, duration: float, mode: str) -> dict[str, Any]:
    import threading
    import uuid

    from django.db import connection, connections

    from clientdesk.accounts.models import User
    from clientdesk.clients.models import Client
    from clientdesk.core.request_meta import RequestMeta
    from clientdesk.messaging.services.sending import message_send

    if mode == "lock":
        _install_locked_append()
    sender = User.objects.get(username="bench-sender")
    if not sender.groups.filter(name="Agent").exists():
        from django.contrib.auth.models import Group

        sender.groups.add(Group.objects.get(name="Agent"))
    clients = list(
        Client.objects.filter(external_id__startswith="XB-").values_list("id", flat=True)[:200]
    )
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM delivery_outgoingendpoint")
    counts = [0] * threads
    errors: list[str] = []
    stop = time.monotonic() + duration
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            user = User.objects.get(pk=sender.pk)
            barrier.wait()
            i = 0
            while time.monotonic() < stop:
                message_send(
                    sender=user,
                    client_id=clients[(n * 7 + i) % len(clients)],
                    body="Your statement is ready.",
                    idempotency_key=str(uuid.uuid4()),
                    meta=RequestMeta(),
                )
                counts[n] += 1
                i += 1
        except Exception as error:  # reported, the run fails
            errors.append(repr(error))
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    t0 = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - t0
    return {
        "threads": threads,
        "sends": sum(counts),
        "seconds": round(elapsed, 2),
        "sends_per_s": round(sum(counts) / elapsed, 1),
        "errors": errors[:3],
    }


def child_reset_sends() -> dict[str, Any]:
    """Empty what sends write, so each part starts alike (ledger rows need the maintenance
    switch: the triggers refuse deletes otherwise)."""
    from django.db import transaction

    from clientdesk.audit.append_only import ledger_maintenance
    from clientdesk.audit.models import (
        ActivityEvent,
        AuditCheckpoint,
        AuditEntry,
        AuditRecord,
        AuditTreeNode,
    )
    from clientdesk.messaging.models import IdempotencyKey, Message

    with transaction.atomic(), ledger_maintenance():
        IdempotencyKey.objects.all().delete()
        Message.objects.filter(idempotency_key__gt="").delete()
        ActivityEvent.objects.all().delete()
        for model in (AuditEntry, AuditRecord, AuditTreeNode, AuditCheckpoint):
            model.objects.all().delete()
    return {"ok": True}


def child_verify() -> dict[str, Any]:
    from clientdesk.audit.selectors import audit_verify
    from clientdesk.audit.services import audit_sequence

    t0 = time.perf_counter()
    sequenced = audit_sequence()
    seconds = time.perf_counter() - t0
    check = audit_verify()
    return {
        "sequenced_after": sequenced,
        "sequence_seconds": round(seconds, 2),
        "intact": check.intact,
        "records": check.checked,
    }


# --- parent -------------------------------------------------------------------------------------


def export_run(url: str, fmt: str, out: Path) -> dict[str, Any]:
    # The child's own peak is VmHWM: ru_maxrss would carry over, across exec, the peak of this
    # process, which holds a baseline's whole output by then.
    code = (
        "import re, sys, time, django; django.setup();"
        "from django.core.management import call_command;"
        "t = time.perf_counter();"
        f"call_command('export_messages', '--format', '{fmt}', '-o', '{out}');"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1);"
        "print(time.perf_counter() - t, hwm)"
    )
    proc = subprocess.run(
        [str(PYTHON), "-c", code],
        env=env_for(url),
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT,
    )
    seconds, rss_kb = proc.stdout.strip().splitlines()[-1].split()
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    return {
        "seconds": round(float(seconds), 2),
        "rows": manifest["rows"],
        "rows_per_s": round(manifest["rows"] / float(seconds)),
        "peak_rss_mb": round(int(rss_kb) / 1024),
        "bytes": out.stat().st_size,
    }


def baseline_run(db: str, fmt: str) -> dict[str, Any]:
    if db == "postgres":
        import psycopg

        agg = "string_agg(d.channel || ':' || d.status, ';')"
        select = "SELECT " + COLUMNS_SQL.format(agg=agg)
        sql = (
            f"COPY ({select}) TO STDOUT (FORMAT csv, HEADER)"
            if fmt == "csv"
            else f"COPY (SELECT row_to_json(t) FROM ({select}) t) TO STDOUT"
        )
        t0 = time.perf_counter()
        size = 0
        with psycopg.connect(PG_URL) as conn, conn.cursor() as cur, cur.copy(sql) as copy:
            for block in copy:
                size += len(block)
        seconds = time.perf_counter() - t0
        tool = "COPY TO STDOUT"
    else:
        agg = "group_concat(d.channel || ':' || d.status, ';')"
        select = "SELECT " + COLUMNS_SQL.format(agg=agg)
        mode = "-csv" if fmt == "csv" else "-json"
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["sqlite3", mode, "-header", str(SQLITE_PATH), select], capture_output=True, check=True
        )
        seconds = time.perf_counter() - t0
        size = len(proc.stdout)
        tool = f"sqlite3 {mode}"
    return {"tool": tool, "seconds": round(seconds, 2), "bytes": size}


def ensure_pg_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{PG_DB}"')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", action="append", choices=list(URLS))
    parser.add_argument("--send-duration", type=float, default=15)
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-send", action="store_true")
    args = parser.parse_args()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "rows": args.rows,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    for db in args.db or list(URLS):
        url = URLS[db]
        if db == "postgres":
            ensure_pg_database()
        part: dict[str, Any] = {}
        results[db] = part
        log(f"{db}: fill to {args.rows:,} messages")
        part["fill"] = child("fill", url, str(args.rows))
        if not args.skip_export:
            for fmt in ("csv", "ndjson"):
                out = VAR_DIR / f"export-{db}.{fmt}"
                log(f"{db}: export {fmt}")
                ours = export_run(url, fmt, out)
                log(f"{db}: baseline {fmt}")
                base = baseline_run(db, fmt)
                ours["share_of_baseline"] = round(base["seconds"] / ours["seconds"], 2)
                part[f"export_{fmt}"] = {"clientdesk": ours, "baseline": base}
                log(f"{db} {fmt}: {ours} vs {base}")
                out.unlink(missing_ok=True)
        if not args.skip_send:
            for label, mode in (("sequencer", "sequencer"), ("advisory lock (before)", "lock")):
                for threads in (8, 32):
                    child("reset_sends", url)
                    log(f"{db}: sends, {label}, {threads} threads")
                    run = child("sends", url, str(threads), str(args.send_duration), mode)
                    run["ledger"] = child("verify", url)
                    part[f"sends {label} x{threads}"] = run
                    log(f"{db}: {run}")
            # The old way wrote ledger records without tree nodes: leave a ledger the current
            # code can extend.
            child("reset_sends", url)
    results["load_after"] = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"export-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    log(f"written {out}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _setup()
        name, rest = sys.argv[2], sys.argv[3:]
        if name == "fill":
            print(json.dumps(child_fill(int(rest[0]))))
        elif name == "sends":
            print(json.dumps(child_sends(int(rest[0]), float(rest[1]), rest[2])))
        elif name == "reset_sends":
            print(json.dumps(child_reset_sends()))
        elif name == "verify":
            print(json.dumps(child_verify()))
    else:
        main()
