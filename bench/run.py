"""`make bench`: every part, each in its own process, results in bench/results/.

    .venv/bin/python bench/run.py [--only serve|search|send|delivery ...] [--count N]
        [--duration S] [--connections N] [--rounds N] [--verify-search] [delivery options]

1. Creates the PostgreSQL bench database (BENCH_PG_URL, default clientdesk_bench) if missing
   and migrates it and var/bench/clientdesk.sqlite3; loads N clients into both (skipped when
   already loaded; bench/loader.py).
2. serve: /healthz under each candidate server (bench/serve_bench.py).
3. search: the 200 queries on SQLite, then PostgreSQL (bench/search_bench.py).
4. send: API sends beside the replay references (bench/send_bench.py).
5. delivery: bench/delivery_bench.py, with its own options passed on.
Writes bench/results/bench-<UTC time>.json and latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg

from common import BENCH_DIR, PG_URL, PYTHON, RESULTS_DIR, SQLITE_URL, VAR_DIR, django_env

PARTS = ("serve", "search", "send", "delivery")
# Whatever BENCH_PG_URL says, the benchmark never loads (and truncates) these.
PROTECTED = {"test", "test_test", "root", "postgres", "template0", "template1"}


def child(script: str, url: str, *args: str, wait: bool = True) -> Any:
    """Run bench/<script> with DATABASE_URL=url; its --out file is the result."""
    out = VAR_DIR / f"{script.removesuffix('.py')}-{url.rsplit('/', 1)[-1]}.json"
    command = [str(PYTHON), str(BENCH_DIR / script), "--out", str(out), *args]
    proc = subprocess.Popen(command, env=django_env(url), cwd=BENCH_DIR)
    if not wait:
        return proc
    if proc.wait():
        raise SystemExit(f"{script} failed ({proc.returncode})")
    return json.loads(out.read_text())


def prepare(count: int) -> None:
    server, name = PG_URL.rsplit("/", 1)
    if name in PROTECTED:
        raise SystemExit(f"refusing to load benchmark data into the database {name!r}")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    for url in (SQLITE_URL, PG_URL):
        manage = [str(PYTHON), "manage.py", "migrate", "--noinput", "-v0"]
        subprocess.run(manage, env=django_env(url), cwd=BENCH_DIR.parent, check=True)
    loads = [
        child("loader.py", url, f"--count={count}", wait=False) for url in (SQLITE_URL, PG_URL)
    ]
    if any(p.wait() for p in loads):
        raise SystemExit("loading the clients failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=PARTS)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20, help="send: seconds per run")
    parser.add_argument("--connections", type=int, default=8, help="send and serve")
    parser.add_argument("--rounds", type=int, default=3, help="serve: rounds of every server")
    parser.add_argument("--verify-search", action="store_true")
    args, delivery_args = parser.parse_known_args()
    parts = args.only or PARTS
    started = datetime.now(UTC)
    prepare(args.count)
    report: dict[str, Any] = {"started": started.isoformat(), "argv": sys.argv[1:]}
    report["load_average_start"] = os.getloadavg()
    load = f"--connections={args.connections}"
    if "serve" in parts:
        report["serve"] = child("serve_bench.py", PG_URL, f"--rounds={args.rounds}", load)
    if "search" in parts:
        verify = ["--verify"] if args.verify_search else []
        report["search"] = {
            url.split(":")[0]: child("search_bench.py", url, f"--count={args.count}", *verify)
            for url in (SQLITE_URL, PG_URL)
        }
    if "send" in parts:
        report["send"] = child("send_bench.py", PG_URL, f"--duration={args.duration}", load)
    if "delivery" in parts:
        report["delivery"] = child("delivery_bench.py", PG_URL, *delivery_args)
    report["load_average_end"] = os.getloadavg()
    RESULTS_DIR.mkdir(exist_ok=True)
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    (RESULTS_DIR / f"bench-{started:%Y%m%dT%H%M%SZ}.json").write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    print(f"results: bench/results/bench-{started:%Y%m%dT%H%M%SZ}.json")


if __name__ == "__main__":
    main()
