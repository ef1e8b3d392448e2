"""The import of 100,000 clients from CSV (`manage.py import_clients`), on SQLite and PostgreSQL:
a first run that creates every client, a second with every row changed (updates), and a third
with the same file (nothing to write). Each run is the real command in its own process; its
wall time, CPU time, rows/s and peak RSS are printed (and the search is checked to find an imported
client).

    .venv/bin/python bench/import_bench.py [--rows 100000] [--database sqlite|postgresql|both]

PostgreSQL: BENCH_IMPORT_PG_URL (default postgres://postgres@127.0.0.1:5432/clientdesk_import_bench),
a database this script drops and creates. SQLite: a file under BENCH_VAR_DIR (var/bench).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from common import PROJECT, PYTHON, VAR_DIR, django_env

PG_URL = os.environ.get(
    "BENCH_IMPORT_PG_URL", "postgres://postgres@127.0.0.1:5432/clientdesk_import_bench"
)
ZONES = ["Europe/Berlin", "Europe/Lisbon", "America/New_York", "Asia/Tokyo", ""]
LANGUAGES = ["en", "de", "pt", "fr", "es"]
FIRST = ["Zoë", "Ana", "João", "Marie", "Ahmed", "Li", "Olga", "Kofi", "Sven", "Priya"]
LAST = ["Müller", "Silva", "García", "Dubois", "Khan", "Wang", "Ivanova", "Mensah", "Berg"]


def write_csv(path: Path, rows: int, *, version: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(
            [
                "external_id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "language",
                "timezone",
                "attr:tier",
                "attr:plan",
            ]
        )
        for n in range(rows):
            out.writerow(
                [
                    f"IMP-{n:07d}",
                    FIRST[n % len(FIRST)],
                    f"{LAST[n % len(LAST)]}{n}" + ("" if version == 1 else "-v2"),
                    f"client{n}@example.com",
                    f"+44 20 {n % 10000:04d} {n // 10000:04d}",
                    LANGUAGES[n % len(LANGUAGES)],
                    ZONES[n % len(ZONES)],
                    ["gold", "silver", "bronze"][n % 3],
                    f"plan-{version}",
                ]
            )


def fresh_database(kind: str) -> str:
    if kind == "sqlite":
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path = VAR_DIR / "import_bench.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        parts = urlsplit(PG_URL)
        name = parts.path.lstrip("/")
        admin = parts._replace(path="/postgres").geturl()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_URL
    subprocess.run(
        [str(PYTHON), "manage.py", "migrate", "-v0"],
        cwd=PROJECT,
        env=django_env(url),
        check=True,
    )
    return url


def timed_import(url: str, path: Path) -> dict[str, float]:
    """The command in its own process: wall time, CPU time (user + system: the machine is
    shared, so the wall time depends on the others' load) and peak RSS, from wait4."""
    report_path = path.with_suffix(".report.json")
    started = time.perf_counter()
    with open(report_path, "wb") as out:
        process = subprocess.Popen(
            [str(PYTHON), "manage.py", "import_clients", str(path)],
            cwd=PROJECT,
            env=django_env(url),
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"import_clients failed with exit code {process.returncode}")
    report = json.loads(report_path.read_text())
    rows = report["rows"]
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "rows_per_second": round(rows / seconds),
        "rows_per_cpu_second": round(rows / cpu),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "created": report["created"],
        "updated": report["updated"],
        "unchanged": report["unchanged"],
        "errors": report["error_rows"],
    }


def search_check(url: str, rows: int) -> str:
    code = (
        "import django; django.setup()\n"
        "from clientdesk.clients.selectors import client_search\n"
        f"page = client_search(query='IMP-{rows - 1:07d}')\n"
        "print(','.join(c.external_id for c in page.items))\n"
    )
    done = subprocess.run(
        [str(PYTHON), "-c", code],
        cwd=PROJECT,
        env=django_env(url),
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    first, second = VAR_DIR / "import_v1.csv", VAR_DIR / "import_v2.csv"
    write_csv(first, args.rows, version=1)
    write_csv(second, args.rows, version=2)
    size = first.stat().st_size / 2**20
    print(f"{args.rows:,} rows, {size:.1f} MB per file, {os.cpu_count()} CPUs")
    for kind in kinds:
        url = fresh_database(kind)
        for label, path in (("create", first), ("update", second), ("same file", second)):
            result = timed_import(url, path)
            print(f"{kind:10} {label:9} {json.dumps(result)}")
        found = search_check(url, args.rows)
        print(f"{kind:10} search for the last external id finds: {found}")


if __name__ == "__main__":
    main()
