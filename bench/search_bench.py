"""Time what the Clients page does for a search, on the database named by DATABASE_URL.

Run by bench/run.py in a subprocess: `python bench/search_bench.py --count N --out FILE
[--verify]`. Each query runs the app's `client_search(query=q, page=1, size=25)`, exactly as
the view does (it builds the SQL, runs one or two statements and builds the 25 + 1 model
instances). One warm-up pass over all queries comes first, then one measured pass. The SQL
each query ran is captured, so the results say which step answered it (the walk of the first
clients in page order, the trigram index, or a plain scan for terms too short for the index),
and the query plans of the slowest queries are saved.

`--verify` also checks every page against a reference: the plain filter `search_text LIKE
'%term%'` for every term, in `sort_name, id` order (what the app ran before it searched in
two steps). That reference reads the whole table for most queries, so it takes minutes.
"""

# Django is set up (below) before anything imports a model.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")

import django

django.setup()

from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import datagen
from clientdesk.clients import selectors
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_search, search_terms
from common import summary_ms

PAGE_SIZE = settings.CLIENTS_PAGE_SIZE  # 25, what the Clients page uses
# Not among the 200 (which stay as they were, to compare runs): one- and two-character queries
# that match few or no clients, so neither the walk nor an index can answer them. Timed the
# same way and reported apart.
RARE_SHORT = ("qx", "xj", "qz", "wq", "7q", "zq")


def run_once(query: str) -> tuple[float, int, bool]:
    started = time.perf_counter()
    page = client_search(query=query, page=1, size=PAGE_SIZE)
    elapsed = time.perf_counter() - started
    return elapsed, len(page.items), page.has_next


def captured_sql(query: str) -> list[str]:
    """The statements one search runs (parameters filled in by the driver)."""
    with CaptureQueriesContext(connection) as captured:
        client_search(query=query, page=1, size=PAGE_SIZE)
    return [q["sql"] for q in captured.captured_queries]


def answered_by(statements: list[str]) -> str:
    """Which step gave the page: the walk, the trigram index, or a scan (short terms only)."""
    last = statements[-1]
    if len(statements) == 1 and f"LIMIT {selectors.WALK_ROWS}" in last:
        return "walk"
    if "MATCH" in last or "MATERIALIZED" in last:
        return "index"
    return "scan"


def reference_page(query: str) -> tuple[list[Any], bool]:
    """The plain answer: every term as a LIKE filter, sorted, one row more than a page."""
    rows = Client.objects.order_by("sort_name", "id")
    for term in search_terms(query):
        rows = rows.filter(search_text__contains=term)
    found = [c.pk for c in rows[: PAGE_SIZE + 1]]
    return found[:PAGE_SIZE], len(found) > PAGE_SIZE


def edit_latency(count: int, samples: int = 10) -> dict[str, float]:
    """What saving a client after a name change costs, search index upkeep included.

    Each save runs in a transaction that is rolled back, so the data stays as loaded.
    """
    rng = random.Random(datagen.SEED + 2)
    times = []
    for _ in range(samples):
        with transaction.atomic():
            client = Client.objects.get(external_id=f"CRM-{rng.randint(1, count):07d}")
            client.last_name += "x"
            client.refresh_derived()
            started = time.perf_counter()
            client.save()
            times.append(time.perf_counter() - started)
            transaction.set_rollback(True)
    return summary_ms(times)


def plan(statements: list[str]) -> str:
    """The plan of every statement the search ran, one after the other."""
    out = []
    with connection.cursor() as cursor:
        for number, sql in enumerate(statements, 1):
            out.append(f"-- statement {number}: {sql[:300]}")
            if connection.vendor == "postgresql":
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                out.extend(row[0] for row in cursor.fetchall())
            else:
                cursor.execute("EXPLAIN QUERY PLAN " + sql)
                out.extend(str(row[-1]) for row in cursor.fetchall())
    return "\n".join(out)


def environment() -> dict[str, Any]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0]
            cursor.execute(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
                [
                    [
                        "shared_buffers",
                        "work_mem",
                        "effective_cache_size",
                        "random_page_cost",
                        "synchronous_commit",
                        "fsync",
                        "jit",
                    ]
                ],
            )
            return {
                "server": version,
                "settings": {n: f"{s}{' ' + u if u else ''}" for n, s, u in cursor.fetchall()},
            }
        cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        has_stats = cursor.fetchone()[0] == 1
        return {"server": f"SQLite {version}", "analyzed": has_stats}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--verify", action="store_true", help="check pages against LIKE")
    args = parser.parse_args()

    queries = datagen.build_queries(args.count)
    vendor = connection.vendor
    connection.ensure_connection()

    warmup = []
    for item in queries:
        warmup.append(run_once(item["q"])[0])
    print(f"  [{vendor}] warm-up pass done ({sum(warmup):.1f} s)", flush=True)

    results = []
    for item in queries:
        elapsed, rows, has_next = run_once(item["q"])
        results.append({**item, "ms": round(elapsed * 1000, 3), "rows": rows, "more": has_next})
    total = sum(r["ms"] for r in results) / 1000
    print(f"  [{vendor}] measured pass done ({total:.1f} s)", flush=True)

    rare = []
    for q in RARE_SHORT:
        run_once(q)
        elapsed, rows, has_next = run_once(q)
        rare.append({"q": q, "ms": round(elapsed * 1000, 3), "rows": rows, "more": has_next})
        rare[-1]["answered_by"] = answered_by(captured_sql(q))
    print(f"  [{vendor}] rare short queries: {[(r['q'], r['ms']) for r in rare]}", flush=True)

    # Untimed: which step answered each query (the statements it ran).
    statements = {}
    for r in results:
        statements[r["q"]] = captured_sql(r["q"])
        r["statements"] = len(statements[r["q"]])
        r["answered_by"] = answered_by(statements[r["q"]])

    by_category: dict[str, list[float]] = defaultdict(list)
    by_step: dict[str, list[float]] = defaultdict(list)
    for r in results:
        by_category[r["category"]].append(r["ms"] / 1000)
        by_step[r["answered_by"]].append(r["ms"] / 1000)
    slowest = sorted(results, key=lambda r: r["ms"], reverse=True)[:8]
    plans = {r["q"]: plan(statements[r["q"]]) for r in slowest[:4]}
    edit = edit_latency(args.count)
    print(f"  [{vendor}] client save after a name change: p50 {edit['p50_ms']:.1f} ms", flush=True)

    verification: dict[str, Any] | None = None
    if args.verify:
        started = time.perf_counter()
        differing = []
        for r in results:
            page = client_search(query=r["q"], page=1, size=PAGE_SIZE)
            expected, more = reference_page(r["q"])
            if [c.pk for c in page.items] != expected or page.has_next != more:
                differing.append(r["q"])
        verification = {
            "reference": "search_text LIKE every term, ORDER BY sort_name, id LIMIT 26",
            "queries": len(results),
            "pages_differing": differing,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(
            f"  [{vendor}] verified against LIKE: {len(results) - len(differing)} of "
            f"{len(results)} pages the same",
            flush=True,
        )

    report = {
        "vendor": vendor,
        "code": "client_search(query=q, page=1, size=25)",
        "walk_rows": selectors.WALK_ROWS,
        "client_save_after_rename": edit,
        "clients": args.count,
        "page_size": PAGE_SIZE,
        "environment": environment(),
        "overall": summary_ms([r["ms"] / 1000 for r in results]),
        "warmup_pass": summary_ms(warmup),
        "by_category": {name: summary_ms(values) for name, values in by_category.items()},
        "by_step": {name: summary_ms(values) for name, values in sorted(by_step.items())},
        "steps": dict(Counter(r["answered_by"] for r in results)),
        "slowest": slowest,
        "plans": plans,
        "verification": verification,
        "rare_short_queries": rare,
        "queries": results,
    }
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
