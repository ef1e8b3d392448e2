"""Export of the message log beside the database's own dump, on SQLite and PostgreSQL.

    .venv/bin/python bench/export_bench.py [--rows 1000000] [--db sqlite|postgres ...]
        [--pg-url postgres://.../clientdesk_export_bench]

Databases: var/bench/export.sqlite3 and the PostgreSQL database `clientdesk_export_bench` on
BENCH_PG_SERVER (or `--pg-url`), created, migrated and filled on first use, kept for the next run.

1. Fill (in a child process): 1,000 clients, one sender, `--rows` messages (bodies of 40-400
   characters, a tenth of them replies), through the model's bulk_create.
2. Export: `manage.py export_messages --format csv|ndjson -o FILE` in a child process: wall
   time, rows/s and the child's peak RSS (its own VmHWM). Beside it, in the same run, the
   database's own dump of the same columns: `COPY (SELECT ...) TO STDOUT` (CSV, and one JSON
   object per row) on PostgreSQL; the `sqlite3` shell's `-csv` / `-json` output on SQLite.

Results: printed, and written to bench/results/export-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from common import PROJECT, PYTHON, RESULTS_DIR, VAR_DIR, django_env, say, setup_django

PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
SQLITE_PATH = VAR_DIR / "export.sqlite3"
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
WORDS = ["statement", "ready", "please", "upload", "your", "documents", "thanks", "=cmd"]
WORDS += ["+1", ",", '"', "ünïcode"]


def fill(rows: int) -> dict[str, Any]:
    """In a child process with Django set up: fill up to `rows` messages."""
    import random
    import uuid

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
            Client(
                external_id=f"XB-{n:05d}",
                first_name="Zoë",
                last_name=f"Müller{n}",
                email=f"x{n}@example.com",
                search_text="",
                sort_name=f"muller{n}",
            )
            for n in range(1000)
        )
        clients = list(Client.objects.filter(external_id__startswith="XB-")[:1000])
    rng = random.Random(10)
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=have)

    def row(i: int) -> Message:
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 60)))
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
    for begin in range(have, rows, 5000):
        Message.objects.bulk_create([row(i) for i in range(begin, min(begin + 5000, rows))])
    seconds = round(time.perf_counter() - t0, 1)
    return {"rows": rows, "filled": rows - have, "fill_seconds": seconds}


def run_python(url: str, code: str) -> str:
    """The last line `code` prints, run by a child process with Django set up for `url`."""
    code = f"import django; django.setup(); {code}"
    command = [str(PYTHON), "-c", code]
    proc = subprocess.run(command, env=django_env(url), capture_output=True, text=True, cwd=PROJECT)
    if proc.returncode:
        raise SystemExit(f"{code[:80]}... failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def export_run(url: str, fmt: str, out: Path) -> dict[str, Any]:
    # The child's own peak is VmHWM: ru_maxrss would carry over, across exec, the peak of this
    # process, which holds a baseline's whole output by then.
    line = run_python(
        url,
        "import re, time; from django.core.management import call_command;"
        "t = time.perf_counter();"
        f"call_command('export_messages', '--format', '{fmt}', '-o', '{out}');"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1);"
        "print(time.perf_counter() - t, hwm)",
    )
    seconds, rss_kb = float(line.split()[0]), int(line.split()[1])
    rows = json.loads(Path(f"{out}.manifest.json").read_text())["rows"]
    return {
        "seconds": round(seconds, 2),
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(rss_kb / 1024),
        "bytes": out.stat().st_size,
    }


def baseline_run(db: str, url: str, fmt: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    if db == "postgres":
        select = "SELECT " + COLUMNS_SQL.format(agg="string_agg(d.channel || ':' || d.status, ';')")
        sql = (
            f"COPY ({select}) TO STDOUT (FORMAT csv, HEADER)"
            if fmt == "csv"
            else f"COPY (SELECT row_to_json(t) FROM ({select}) t) TO STDOUT"
        )
        with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(sql) as copy:
            size = sum(len(block) for block in copy)
        tool = "COPY TO STDOUT"
    else:
        select = "SELECT " + COLUMNS_SQL.format(
            agg="group_concat(d.channel || ':' || d.status, ';')"
        )
        tool = f"sqlite3 {'-csv' if fmt == 'csv' else '-json'}"
        command = [*tool.split(), "-header", str(SQLITE_PATH), select]
        size = len(subprocess.run(command, capture_output=True, check=True).stdout)
    return {"tool": tool, "seconds": round(time.perf_counter() - t0, 2), "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--pg-url", default=f"{PG_SERVER}/clientdesk_export_bench")
    parser.add_argument("--fill", type=int, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.fill:
        setup_django()
        print(json.dumps(fill(args.fill)))
        return
    urls = {"sqlite": f"sqlite:///{SQLITE_PATH}", "postgres": args.pg_url}
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "rows": args.rows,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    for db in args.db or list(urls):
        url = urls[db]
        if db == "postgres":
            server, name = url.rsplit("/", 1)
            with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
                if not conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [name]
                ).fetchone():
                    conn.execute(f'CREATE DATABASE "{name}"')
        say("export", f"{db}: fill to {args.rows:,} messages")
        command = [str(PYTHON), __file__, "--fill", str(args.rows)]
        filled = subprocess.run(command, env=django_env(url), capture_output=True, check=True)
        results[db] = part = {"fill": json.loads(filled.stdout.splitlines()[-1])}
        for fmt in ("csv", "ndjson"):
            out = VAR_DIR / f"export-{db}.{fmt}"
            ours = export_run(url, fmt, out)
            base = baseline_run(db, url, fmt)
            ours["share_of_baseline"] = round(base["seconds"] / ours["seconds"], 2)
            part[f"export_{fmt}"] = {"clientdesk": ours, "baseline": base}
            say("export", f"{db} {fmt}: {ours} vs {base}")
            out.unlink(missing_ok=True)
    results["load_after"] = os.getloadavg()
    out = RESULTS_DIR / f"export-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    say("export", f"written {out}")


if __name__ == "__main__":
    main()
