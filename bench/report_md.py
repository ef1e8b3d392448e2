"""Print a results file as the Markdown tables used in docs/PERFORMANCE.md.

`.venv/bin/python bench/report_md.py [bench/results/latest.json] [--before EARLIER.json]`

With --before, the search tables put an earlier run's numbers (its `overall` and
`by_category`, i.e. what the app's search cost then) beside this run's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import RESULTS_DIR


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _trio(c: dict[str, Any]) -> str:
    return f"{c['p50_ms']:.1f} / {c['p95_ms']:.0f} / {c['max_ms']:,.0f}"


def search(report: dict[str, Any], before: dict[str, Any] | None) -> None:
    results = report["search"]
    print(_row(["database", "code", "p50 ms", "p95 ms", "p99 ms", "max ms"]))
    print(_row(["---"] * 2 + ["---:"] * 4))
    for name, r in results.items():
        server = " ".join(r["environment"]["server"].split()[:2])
        rows = []
        if before and name in before.get("search", {}):
            rows.append((f"before ({before['started_at'][:16]})", before["search"][name]))
        rows.append(("now", r))
        for label, part in rows:
            o = part["overall"]
            cells = [_ms(o[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
            print(_row([server, label, *cells]))
    print()
    names = list(results)
    header = ["kind", "n"]
    for n in names:
        header += [f"{n} before", f"{n} now"] if before else [n]
    print(_row(header))
    print(_row(["---", "---:"] + ["---:"] * (len(header) - 2)))
    first = results[names[0]]
    for category, stats in first["by_category"].items():
        cells = []
        for n in names:
            if before:
                old = before.get("search", {}).get(n, {}).get("by_category", {}).get(category)
                cells.append(_trio(old) if old else "-")
            cells.append(_trio(results[n]["by_category"][category]))
        print(_row([category, stats["n"], *cells]))
    print()
    for n, r in results.items():
        print(f"{n} slowest: " + ", ".join(f"{x['q']} {x['ms']:.0f}" for x in r["slowest"]))
        print(f"{n} answered by: {r['steps']}; by step: {r['by_step']}")
        print(f"{n} verification: {r.get('verification')}")
        print(f"{n} rare short queries (not in the 200): {r.get('rare_short_queries')}")
        print(f"{n} client save after rename: {r.get('client_save_after_rename')}")
        print(f"{n} warm-up pass: {r['warmup_pass']}")
        print(f"{n} environment: {r['environment']}")
    print()


def send(report: dict[str, Any]) -> None:
    s = report["send"]
    print(_row(["path", "done", "rate", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"]))
    print(_row(["---"] + ["---:"] * 7))
    for label, part, unit in (
        (f"API, uvicorn {s['api']['uvicorn_workers']} workers", s["api"], "req/s"),
        ("raw psycopg baseline", s["raw_psycopg"], "tx/s"),
    ):
        lat = part["latency"]
        print(
            _row(
                [
                    label,
                    f"{part['ok']:,}",
                    f"{part['per_second']:,.1f} {unit}",
                    _ms(lat["p50_ms"]),
                    _ms(lat["p95_ms"]),
                    _ms(lat["p99_ms"]),
                    _ms(lat["max_ms"]),
                    part["errors"],
                ]
            )
        )
    api, raw = s["api"], s["raw_psycopg"]
    print()
    print(
        f"statements/send {s['queries_per_send']}; sessions opened {api.get('pg_sessions_opened')}"
        f" ({api.get('pg_sessions_per_request')}/request); app connections "
        f"{api.get('pg_connections')} of max_connections {api.get('pg_max_connections_setting')}"
        f"; pool max_size {api.get('pool_max_size_per_process')} per process"
    )
    print(
        f"api statuses {api['statuses']}, warm-up {api.get('warmup_statuses')}, samples "
        f"{api['error_samples'][:1]}; server log {api.get('server_log_matches')}"
    )
    print(
        f"checks: api {api['rows_match']}/{api['ledger_intact']}, "
        f"raw {raw['rows_match']}/{raw['ledger_intact']}; deliveries written by the API part: "
        f"{api.get('deliveries_written')}"
    )
    print()


def delivery(report: dict[str, Any]) -> None:
    results = report["delivery"]
    pg = results.get("postgresql", {})
    if "throughput" in pg:
        t = pg["throughput"]
        print(
            _row(
                [
                    "sender",
                    "total concurrency",
                    "deliveries",
                    "seconds",
                    "deliveries/s",
                    "exactly once",
                    "sender CPU s",
                    "receiver CPU s",
                ]
            )
        )
        print(_row(["---"] + ["---:"] * 7))
        for base, work in zip(t["baseline"], t["workers"], strict=True):
            print(
                _row(
                    [
                        "bare httpx.AsyncClient, 1 process",
                        base["total_concurrency"],
                        f"{base['deliveries']:,}",
                        f"{base['elapsed_s']:.2f}",
                        f"{base['per_second']:,.1f}",
                        base["receiver"]["exactly_once"],
                        base["client_cpu_seconds"],
                        base["receiver_cpu_seconds"],
                    ]
                )
            )
            print(
                _row(
                    [
                        f"{work['workers']} x `run_worker --concurrency "
                        f"{work['concurrency_each']}`",
                        work["total_concurrency"],
                        f"{work['deliveries']:,}",
                        f"{work['drain_s']:.2f}",
                        f"{work['per_second']:,.1f}",
                        work["receiver"]["exactly_once"],
                        work["worker_processes"]["cpu_seconds"],
                        work["receiver_cpu_seconds"],
                    ]
                )
            )
        print()
        for work in t["workers"]:
            print(
                f"{work['workers']} workers: first attempt {work['first_attempt_after_commit_ms']}"
                f" ms after commit; steady (10-90 %) {work['steady_per_second_10_90']}/s; "
                f"{work['db_transactions_per_delivery']} transactions/delivery; enqueue "
                f"{work['enqueue_transaction_s']} s; db {work['database']}; sessions "
                f"{work.get('db_sessions_while_draining')}; receiver "
                f"{work['receiver']}; processes {work['worker_processes']}"
            )
        print()
    for name, r in results.items():
        lat = r.get("latency")
        if lat:
            print(
                f"{name} latency: {lat['messages']} messages (+{lat['warmup_messages']} warm-up)"
                f" at {lat['achieved_rate']}/s; send->first attempt {lat['send_to_first_attempt']}"
                f"; send->arrival {lat['send_to_arrival']}; message_send "
                f"{lat['message_send_call']}; db {lat['database']}; receiver {lat['receiver']}"
            )
        for case, idle in r.get("idle", {}).items():
            print(
                f"{name} idle, {case}: worker {idle['worker_cpu_share_of_one_core']} of a core, "
                f"{idle['db_transactions_per_second']} tx/s, attempts {idle['attempts_made']}, "
                f"message_send {idle['message_send_call']}"
            )
    print()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--before", type=Path, help="an earlier results file, for search")
    args = parser.parse_args()
    report = json.loads(args.file.read_text())
    before = json.loads(args.before.read_text()) if args.before else None
    m = report["machine"]
    print(f"Run {report['started_at']} ({args.file.name}), total {report['total_seconds']:.0f} s")
    print(f"machine: {m}")
    print(f"git: {report.get('git')}; load averages: {report.get('load_average_at_phase_start')}")
    print(f"machine use per part: {report.get('machine_use')}")
    print(f"load: {report['load']}")
    print()
    if "search" in report:
        search(report, before)
    if "send" in report:
        send(report)
    if "delivery" in report:
        delivery(report)


if __name__ == "__main__":
    main()
