"""Time what the Clients page does for a search, on the database named by DATABASE_URL.

    python bench/search_bench.py --out FILE [--count N] [--verify]

Each of the 200 queries (`datagen.build_queries`) runs the app's `client_search(query=q,
page=1, size=25)` once to warm up, then once timed. Rare one- and two-character queries, not
among the 200, are timed apart. The statements each query ran say which step answered it (the
walk of the first clients in page order, an index, or a scan). `--verify` checks every page
against the plain `search_text LIKE '%term%'` filter in page order (minutes: it scans).
"""

# Django is set up (below) before anything imports a model.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")

import django

django.setup()

from django.db import connection
from django.test.utils import CaptureQueriesContext

import datagen
from clientdesk.clients import selectors
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_search, search_terms
from common import summary_ms

# Not among the 200 (kept as they were, to compare runs): short words that match few clients.
RARE_SHORT = ("qx", "xj", "qz", "wq", "7q", "zq", "zy", "ж")


def timed(query: str) -> tuple[float, list[str]]:
    started = time.perf_counter()
    client_search(query=query, page=1, size=25)
    elapsed = time.perf_counter() - started
    with CaptureQueriesContext(connection) as captured:
        client_search(query=query, page=1, size=25)
    return elapsed, [q["sql"] for q in captured.captured_queries]


def answered_by(statements: list[str]) -> str:
    """walk: the first clients in page order; probe: the index's few matches; far walk: more
    clients in page order; index: all the index's matches; scan: the walk to the end."""
    # Leave out the search's own transaction (BEGIN, SET LOCAL, COMMIT on PostgreSQL).
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    last = reads[-1] if reads else ""
    if f"LIMIT {selectors.WALK_ROWS}) w" in last:
        return "walk"
    # Older code (a `PYTHONPATH` run) has no far walk.
    if f"LIMIT {getattr(selectors, 'FAR_WALK_ROWS', -1)}) w" in last:
        return "far walk"
    # The probe's statement is last when it found nothing (an empty page needs no rows).
    if "WITH m AS" in last and f"LIMIT {getattr(selectors, 'PROBE_ROWS', -2) + 1}" not in last:
        return "index"
    if " w WHERE " in last or "NOT INDEXED" in last:
        return "scan"
    return "probe"


def reference_ids(query: str) -> list[object]:
    rows = Client.objects.order_by("sort_name", "id")
    for term in search_terms(query):
        rows = rows.filter(search_text__contains=term)
    return list(rows.values_list("pk", flat=True)[:25])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()

    queries = datagen.build_queries(args.count)
    for item in queries:
        client_search(query=item["q"], page=1, size=25)
    results = []
    for item in [*queries, *({"q": q, "category": "rare short"} for q in RARE_SHORT)]:
        if item["category"] == "rare short":
            client_search(query=item["q"], page=1, size=25)
        seconds, statements = timed(item["q"])
        results.append({**item, "ms": round(seconds * 1000, 2), "step": answered_by(statements)})
    main_200 = [r for r in results if r["category"] != "rare short"]
    groups: dict[str, list[float]] = defaultdict(list)
    for r in results:
        groups[r["category"]].append(r["ms"] / 1000)
        groups[f"step: {r['step']}"].append(r["ms"] / 1000)
    report = {
        "vendor": connection.vendor,
        "clients": args.count,
        "overall": summary_ms([r["ms"] / 1000 for r in main_200]),
        "groups": {name: summary_ms(values) for name, values in sorted(groups.items())},
        "rare_short": {r["q"]: r["ms"] for r in results if r["category"] == "rare short"},
        "slowest": sorted(results, key=lambda r: -r["ms"])[:8],
    }
    if args.verify:
        report["pages_differing"] = [
            r["q"]
            for r in results
            if [c.pk for c in client_search(query=r["q"], page=1, size=25).items]
            != reference_ids(r["q"])
        ]
    print(f"  [{connection.vendor}] {report['overall']}  rare short: {report['rare_short']}")
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
