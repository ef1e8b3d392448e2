"""`make bench`: search latency at 1M clients, API send throughput, webhook delivery.

Steps, each database in its own subprocess with DATABASE_URL set:
1. Create the PostgreSQL database `clientdesk_bench` if missing; migrate it and the SQLite
   file var/bench/clientdesk.sqlite3.
2. Load the benchmark clients into both at once (skipped when already loaded).
3. Search latency on SQLite, then on PostgreSQL (bench/search_bench.py).
4. API send throughput under uvicorn beside a raw psycopg baseline (bench/send_bench.py).
5. Webhook delivery (bench/delivery_bench.py): drain rate of 1, 2 and 4 workers beside a bare
   httpx baseline, a worker's idle cost, and send -> arrival latency at a steady rate
   (PostgreSQL; the latency and idle parts on SQLite too).
6. Print the tables and write bench/results/bench-<time>.json (and latest.json).

Before each part the benchmark samples, while idle, how busy the machine is; during each part
it counts the CPU time that other people's processes used (the machine is shared).

Options: --count, --duration, --concurrency, --workers, --only PART (repeatable: search,
send, delivery), --skip-search, --skip-send, --skip-delivery, --verify-search, --deliveries,
--delivery-workers, --worker-concurrency, --rate, --latency-duration, --wait-quiet,
--fresh (drop both bench databases first), --drop (drop them and exit).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

import datagen
from common import (
    BENCH_DIR,
    PG_DB,
    PG_SERVER,
    PG_URL,
    PROJECT,
    PYTHON,
    RESULTS_DIR,
    SQLITE_PATH,
    SQLITE_URL,
    VAR_DIR,
    descendants,
    django_env,
    machine_busy,
    process_table,
)

console = Console(width=None if sys.stdout.isatty() else 110)
# Databases this benchmark must never touch, whatever the configuration says.
PROTECTED = {
    "test",
    "test_test",
    "root",
    "test_root",
    "e2e2",
    "test_e2e2",
    "postgres",
    "template0",
    "template1",
}
PARTS = ("search", "send", "delivery")
# Busier than this while the benchmark is idle means someone else is using the machine.
QUIET_BUSY = 0.15


LOAD_AVERAGES: dict[str, list[float]] = {}
BUSY_BEFORE: dict[str, float] = {}


def step(message: str) -> None:
    """Start a phase and note the load average (which includes this benchmark's own work)."""
    console.rule(f"[bold]{message}")
    load = [round(x, 2) for x in os.getloadavg()]
    if not LOAD_AVERAGES and load[0] > 1.0:
        console.print(
            f"[yellow]load average {load[0]:.1f} on {os.cpu_count()} CPUs before starting: "
            "something else is running, so the numbers will be slower and noisier[/yellow]"
        )
    LOAD_AVERAGES[message] = load


def quiet_check(part: str, wait: float) -> None:
    """Sample how busy the machine is while the benchmark does nothing; with --wait-quiet,
    wait (up to `wait` seconds) until it is quiet."""
    deadline = time.monotonic() + wait
    while True:
        busy = machine_busy(3.0)
        BUSY_BEFORE[part] = busy
        if busy <= QUIET_BUSY:
            return
        if time.monotonic() >= deadline:
            console.print(
                f"[yellow]{busy:.0%} of the CPUs busy with other work before {part}: the "
                "numbers will be slower and noisier[/yellow]"
            )
            return
        console.print(f"[dim]{busy:.0%} of the CPUs busy with other work; waiting[/dim]")
        time.sleep(15)


class OtherWork:
    """CPU seconds that processes other than this benchmark's used during one part.

    Not ours: not descended from this process, and not a PostgreSQL process, except client
    backends serving other databases. Kernel threads are counted apart (their I/O writeback
    is partly ours). Processes that come and go within the part are missed.
    """

    def __init__(self) -> None:
        self.before = process_table()
        self.started = time.perf_counter()

    def finish(self) -> dict[str, Any]:
        after = process_table()
        elapsed = time.perf_counter() - self.started
        ours = descendants(self.before, os.getpid()) | descendants(after, os.getpid())
        with admin_connect() as conn:
            rows = conn.execute(
                "SELECT pid, datname FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND datname IS DISTINCT FROM %s",
                [PG_DB],
            ).fetchall()
        other_backends = {int(pid) for pid, _ in rows}
        used: dict[str, float] = {}
        kernel = 0.0
        for pid, (cpu, ppid, name) in after.items():
            if pid in ours or (name == "postgres" and pid not in other_backends):
                continue
            if pid == 2 or ppid == 2:  # kernel threads: I/O writeback is partly ours
                earlier = self.before.get(pid)
                kernel += cpu - (earlier[0] if earlier else 0.0)
                continue
            earlier = self.before.get(pid)
            start = earlier[0] if earlier and earlier[2] == name else 0.0
            if cpu - start > 0:
                label = f"postgres ({dict(rows).get(pid)})" if name == "postgres" else name
                used[label] = used.get(label, 0.0) + cpu - start
        total = sum(used.values())
        top = sorted(used.items(), key=lambda kv: kv[1], reverse=True)[:6]
        return {
            "seconds": round(elapsed, 1),
            "other_cpu_seconds": round(total, 1),
            "other_cores_busy": round(total / elapsed, 2) if elapsed else 0.0,
            "top": {name: round(cpu, 1) for name, cpu in top},
            "kernel_threads_cpu_seconds": round(kernel, 1),
        }


def run_part(report: dict[str, Any], name: str, args: argparse.Namespace, body: Any) -> None:
    quiet_check(name, args.wait_quiet)
    other = OtherWork()
    load_start = [round(x, 2) for x in os.getloadavg()]
    phase = time.perf_counter()
    report[name] = body()
    report[f"{name}_wall_seconds"] = round(time.perf_counter() - phase, 1)
    usage = other.finish()
    report.setdefault("machine_use", {})[name] = {
        "busy_before_idle_sample": BUSY_BEFORE.get(name),
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        **usage,
    }
    if usage["other_cores_busy"] > 0.1:
        console.print(
            f"[yellow]other people's processes used {usage['other_cpu_seconds']} CPU s during "
            f"{name} ({usage['other_cores_busy']} cores on average): {usage['top']}[/yellow]"
        )


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    import sqlite3
    from importlib.metadata import version

    import django

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "psycopg_pool": version("psycopg-pool"),
        "uvicorn": version("uvicorn"),
        "h11": version("h11"),
        "httpx": version("httpx"),
        "standardwebhooks": version("standardwebhooks"),
        "sqlite": sqlite3.sqlite_version,
    }


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_paths": len(changed)}


def admin_connect() -> psycopg.Connection[Any]:
    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True)


def pg_create() -> None:
    assert PG_DB not in PROTECTED
    with admin_connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_DB)))
            console.print(f"created PostgreSQL database {PG_DB}")


def drop_all() -> None:
    assert PG_DB not in PROTECTED
    with admin_connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(PG_DB))
        )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
    console.print(f"dropped PostgreSQL database {PG_DB} and {SQLITE_PATH}")


def run_child(args: list[str], database_url: str) -> None:
    subprocess.run(args, cwd=PROJECT, env=django_env(database_url), check=True)


def migrate(database_url: str) -> None:
    run_child([str(PYTHON), "manage.py", "migrate", "--noinput", "-v0"], database_url)


def load_both(count: int, work: Path) -> dict[str, Any]:
    """Load SQLite and PostgreSQL at the same time (two processes, two cores)."""
    children = {}
    for name, url in (("sqlite", SQLITE_URL), ("postgresql", PG_URL)):
        out = work / f"load-{name}.json"
        children[name] = (
            subprocess.Popen(
                [
                    str(PYTHON),
                    str(BENCH_DIR / "loader.py"),
                    "--count",
                    str(count),
                    "--out",
                    str(out),
                ],
                cwd=PROJECT,
                env=django_env(url),
            ),
            out,
        )
    results = {}
    for name, (child, out) in children.items():
        if child.wait() != 0:
            raise SystemExit(f"loading {name} failed (exit {child.returncode})")
        results[name] = json.loads(out.read_text())
    return results


def search(name: str, url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / f"search-{name}.json"
    command = [str(PYTHON), str(BENCH_DIR / "search_bench.py"), "--count", str(args.count)]
    run_child([*command, "--out", str(out), *(["--verify"] if args.verify_search else [])], url)
    return dict(json.loads(out.read_text()))


def send(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / "send.json"
    run_child(
        [
            str(PYTHON),
            str(BENCH_DIR / "send_bench.py"),
            "--out",
            str(out),
            "--count",
            str(args.count),
            "--duration",
            str(args.duration),
            "--concurrency",
            str(args.concurrency),
            "--workers",
            str(args.workers),
        ],
        PG_URL,
    )
    return dict(json.loads(out.read_text()))


def delivery(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    results = {}
    for name, url, parts in (
        ("postgresql", PG_URL, args.delivery_parts),
        ("sqlite", SQLITE_URL, [p for p in args.delivery_parts if p != "throughput"]),
    ):
        if not parts:
            continue
        out = work / f"delivery-{name}.json"
        run_child(
            [
                str(PYTHON),
                str(BENCH_DIR / "delivery_bench.py"),
                "--out",
                str(out),
                "--parts",
                ",".join(parts),
                "--count",
                str(args.count),
                "--deliveries",
                str(args.deliveries),
                "--worker-counts",
                ",".join(str(n) for n in args.delivery_workers),
                "--worker-concurrency",
                str(args.worker_concurrency),
                "--rate",
                str(args.rate),
                "--latency-duration",
                str(args.latency_duration),
            ],
            url,
        )
        results[name] = json.loads(out.read_text())
    return results


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def search_tables(results: dict[str, dict[str, Any]]) -> None:
    table = Table(title="Client search: client_search(query=q, page=1, size=25)")
    for column in ("database", "clients", "queries", "p50 ms", "p95 ms", "p99 ms", "max"):
        table.add_column(column, justify="left" if column == "database" else "right")
    for r in results.values():
        server = " ".join(r["environment"]["server"].split()[:2])
        o = r["overall"]
        table.add_row(
            server,
            f"{r['clients']:,}",
            str(o["n"]),
            _ms(o["p50_ms"]),
            _ms(o["p95_ms"]),
            _ms(o["p99_ms"]),
            _ms(o["max_ms"]),
        )
    console.print(table)

    detail = Table(title="Search by kind of query, p50 / p95 / max ms")
    detail.add_column("kind")
    detail.add_column("n", justify="right")
    for name in results:
        detail.add_column(name, justify="right")
    first = next(iter(results.values()))
    for category, stats in first["by_category"].items():
        cells = []
        for r in results.values():
            c = r["by_category"][category]
            cells.append(f"{c['p50_ms']:.1f} / {c['p95_ms']:.0f} / {c['max_ms']:.0f}")
        detail.add_row(category, str(stats["n"]), *cells)
    console.print(detail)

    for name, r in results.items():
        edit = r.get("client_save_after_rename")
        if edit:
            console.print(
                f"[dim]{name}: saving a client after a name change (search index upkeep "
                f"included): p50 {edit['p50_ms']:.1f} ms, max {edit['max_ms']:.1f} ms[/dim]"
            )
        slow = ", ".join(f"{s['q']!r} {s['ms']:.0f} ms" for s in r["slowest"][:5])
        steps = ", ".join(
            f"{step} {r['steps'][step]} (p50 {v['p50_ms']:.1f}, max {v['max_ms']:.0f} ms)"
            for step, v in r["by_step"].items()
        )
        console.print(f"[dim]{name}: slowest {slow}; answered by {steps}[/dim]")
        rare = r.get("rare_short_queries")
        if rare:
            listed = ", ".join(f"{x['q']!r} {x['ms']:.0f} ms" for x in rare)
            console.print(
                f"[dim]{name}: rare 1-2 character queries (not in the 200): {listed}[/dim]"
            )
        check = r.get("verification")
        if check:
            same = check["queries"] - len(check["pages_differing"])
            console.print(
                f"[dim]{name}: {same} of {check['queries']} pages the same as the plain LIKE "
                f"filter; differing: {check['pages_differing']}[/dim]"
            )


def send_table(result: dict[str, Any]) -> None:
    api, raw = result["api"], result["raw_psycopg"]
    table = Table(
        title=(
            f"Send on PostgreSQL: {result['concurrency']} concurrent clients for "
            f"{result['duration_s']:g} s (after a {result['warmup_s']:g} s warm-up)"
        )
    )
    for column in ("path", "done", "per second", "p50 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row(
        f"API POST .../messages, uvicorn {api['uvicorn_workers']} workers",
        f"{api['ok']:,}",
        f"{api['per_second']:,.1f} req/s",
        _ms(api["latency"].get("p50_ms")),
        _ms(api["latency"].get("p99_ms")),
        _ms(api["latency"].get("max_ms")),
        str(api["errors"]),
    )
    table.add_row(
        "raw psycopg, same rows, 1 tx/message",
        f"{raw['ok']:,}",
        f"{raw['per_second']:,.1f} tx/s",
        _ms(raw["latency"].get("p50_ms")),
        _ms(raw["latency"].get("p99_ms")),
        _ms(raw["latency"].get("max_ms")),
        str(raw["errors"]),
    )
    console.print(table)
    checks = []
    for name, part in (("API", api), ("baseline", raw)):
        ok = part["rows_match"] and part["ledger_intact"]
        checks.append(f"{name}: {'rows and ledger verified' if ok else 'CHECK FAILED'}")
    connections = api.get("pg_connections", {})
    console.print(
        f"[dim]{result['queries_per_send']} SQL statements per API send; "
        f"{api.get('pg_sessions_per_request', '?')} new PostgreSQL sessions per API request, "
        f"app connections open: median {connections.get('median', '?')}, "
        f"max {api.get('pg_connections_max', '?')} ({connections.get('max_active', '?')} "
        f"running a statement at once; pool max_size "
        f"{api.get('pool_max_size_per_process', '?')} per process; max_connections "
        f"{api.get('pg_max_connections_setting', '?')}); server log: "
        f"{api.get('server_log_matches', {})}; " + "; ".join(checks) + "[/dim]"
    )


def delivery_tables(results: dict[str, Any]) -> None:
    pg = results.get("postgresql", {})
    if "throughput" in pg:
        table = Table(title="Webhook delivery on PostgreSQL: deliveries drained per second")
        for column in ("sender", "concurrency", "deliveries", "seconds", "per second", "once"):
            table.add_column(column, justify="left" if column == "sender" else "right")
        t = pg["throughput"]
        for base, work in zip(t["baseline"], t["workers"], strict=True):
            for label, part, seconds in (
                ("bare httpx (1 process, asyncio)", base, base["elapsed_s"]),
                (
                    f"{work['workers']} x run_worker --concurrency {work['concurrency_each']}",
                    work,
                    work["drain_s"],
                ),
            ):
                table.add_row(
                    label,
                    str(part["total_concurrency"]),
                    f"{part['deliveries']:,}",
                    f"{seconds:.2f}",
                    f"{part['per_second']:,.1f}",
                    "yes" if part["receiver"]["exactly_once"] else "NO",
                )
        console.print(table)
    for name, r in results.items():
        lat = r.get("latency")
        if lat:
            a, b = lat["send_to_first_attempt"], lat["send_to_arrival"]
            console.print(
                f"{name}: {lat['messages']} messages at {lat['achieved_rate']}/s, 1 worker: "
                f"send -> first attempt p50 {a['p50_ms']:.1f} ms p99 {a['p99_ms']:.1f} ms; "
                f"send -> arrival p50 {b['p50_ms']:.1f} ms p99 {b['p99_ms']:.1f} ms, max "
                f"{b['max_ms']:.1f} ms; exactly once: {lat['receiver']['exactly_once']}"
            )
        for case, idle in r.get("idle", {}).items():
            console.print(
                f"[dim]{name}: 1 worker, {case}: {idle['worker_cpu_share_of_one_core']:.0%} of "
                f"a core, {idle['db_transactions_per_second']} transactions/s; sends "
                f"{idle['message_send_call'].get('p50_ms', '-')} ms p50[/dim]"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", action="append", choices=PARTS, help="run just this part")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-send", action="store_true")
    parser.add_argument("--skip-delivery", action="store_true")
    parser.add_argument(
        "--verify-search", action="store_true", help="check every page against LIKE (slow)"
    )
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument(
        "--delivery-workers", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument(
        "--delivery-parts",
        type=lambda v: [x for x in v.split(",") if x],
        default=["throughput", "idle", "latency"],
    )
    parser.add_argument("--rate", type=float, default=20.0, help="messages/s, latency part")
    parser.add_argument("--latency-duration", type=float, default=20.0)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each part, wait up to S seconds for other people's work to stop",
    )
    parser.add_argument("--fresh", action="store_true", help="drop both bench databases first")
    parser.add_argument("--drop", action="store_true", help="drop both bench databases, exit")
    args = parser.parse_args()
    wanted = set(args.only or PARTS)
    for part in PARTS:
        if getattr(args, f"skip_{part}"):
            wanted.discard(part)

    if args.drop:
        drop_all()
        return
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    work = VAR_DIR / "work"
    for folder in (VAR_DIR, VAR_DIR / "static", work, RESULTS_DIR):
        folder.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "command": "make bench  (.venv/bin/python bench/run.py " + shlex.join(sys.argv[1:]) + ")",
        "machine": machine(),
        "git": git_state(),
        "config": {
            "clients": args.count,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "uvicorn_workers": args.workers,
            "parts": [p for p in PARTS if p in wanted],
            "deliveries": args.deliveries,
            "delivery_workers": args.delivery_workers,
            "worker_concurrency": args.worker_concurrency,
            "latency_rate": args.rate,
            "latency_duration_s": args.latency_duration,
            "db_pool_max_size": int(os.environ.get("CLIENTDESK_DB_POOL_SIZE", "10")),
            "sqlite": str(SQLITE_PATH.relative_to(PROJECT)),
            "postgresql": PG_URL,
        },
    }

    step("Prepare databases")
    if args.fresh:
        drop_all()
    pg_create()
    migrate(SQLITE_URL)
    migrate(PG_URL)
    phase = time.perf_counter()
    step(f"Load {args.count:,} clients into SQLite and PostgreSQL")
    report["load"] = load_both(args.count, work)
    report["load"]["wall_seconds"] = round(time.perf_counter() - phase, 1)

    if "search" in wanted:
        step("Search latency")
        # Migrate again before each part: the app may have gained migrations meanwhile.
        migrate(SQLITE_URL)
        migrate(PG_URL)
        run_part(
            report,
            "search",
            args,
            lambda: {
                "sqlite": search("sqlite", SQLITE_URL, args, work),
                "postgresql": search("postgresql", PG_URL, args, work),
            },
        )
    if "send" in wanted:
        step("API send throughput (PostgreSQL)")
        migrate(PG_URL)
        run_part(report, "send", args, lambda: send(args, work))
    if "delivery" in wanted:
        step("Webhook delivery (PostgreSQL, then SQLite)")
        migrate(PG_URL)
        migrate(SQLITE_URL)
        run_part(report, "delivery", args, lambda: delivery(args, work))

    report["load_average_at_phase_start"] = LOAD_AVERAGES
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["finished_at"] = datetime.now(UTC).isoformat()

    step("Results")
    m = report["machine"]
    console.print(
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB; Python {m['python']}, "
        f"Django {m['django']}"
    )
    if "search" in report:
        search_tables(report["search"])
    if "send" in report:
        send_table(report["send"])
    if "delivery" in report:
        delivery_tables(report["delivery"])
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"bench-{stamp}.json"
    text = json.dumps(report, indent=2, ensure_ascii=False)
    path.write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    loaded = ", ".join(
        f"{k} {'loaded' if v['loaded'] else 'reused'} ({v['seconds']:.0f} s)"
        for k, v in report["load"].items()
        if isinstance(v, dict)
    )
    console.print(f"Data: {loaded}. Total run time {report['total_seconds']:.0f} s.")
    console.print(f"Results: {path.relative_to(PROJECT)}")


if __name__ == "__main__":
    main()
