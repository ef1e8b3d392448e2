"""The export over HTTP under `make run`'s server: granian's ASGI interface, one process.

    .venv/bin/python bench/export_http_bench.py [--rows 1000000] [--format csv|ndjson]
        [--src DIR]

Fills `$BENCH_VAR_DIR/export.sqlite3` as bench/export_bench.py does (the same database), starts
granian as `make run` does (its command line read from the Makefile), and downloads
`GET /api/v1/messages/export` with curl as a Manager while sampling the server's RSS (the
granian process and its worker, every 50 ms). `--src` runs another checkout's code (e.g. a
`git archive` of an older commit) against the same database, for a before/after.

Results: printed, and written to bench/results/export-http-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from common import PROJECT, PYTHON, RESULTS_DIR, VAR_DIR, VENV_BIN, django_env, free_port, say
from common import stop as stop_process
from export_bench import SQLITE_PATH, run_python

EXPORTER_CODE = (
    "from django.contrib.auth.models import Group; from clientdesk.accounts.models import User;"
    "from clientdesk.accounts.services import api_token_create;"
    "u, _ = User.objects.get_or_create(username='bench-exporter');"
    "u.groups.set([Group.objects.get(name='Manager')]);"
    "print(api_token_create(user=u)[1])"
)


def make_run_command(port: int) -> list[str]:
    """The granian command line of `make run`, with this run's port."""
    text = (PROJECT / "Makefile").read_text().replace("\\\n", " ")
    line = re.search(r"\$\(VENV\)/bin/granian ([^'&]*)", text)
    assert line, "no granian line in the Makefile"
    args = shlex.split(line.group(1).replace("$(PORT)", str(port)))
    return [str(VENV_BIN / "granian"), *args]


def tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def sample_rss(pid: int, stop: threading.Event, peaks: list[int]) -> None:
    while not stop.is_set():
        with contextlib.suppress(psutil.Error):  # a worker that just went
            peaks.append(tree_rss(pid))
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", default="csv", choices=["csv", "ndjson"])
    parser.add_argument("--src", type=Path, help="the src/ directory of another checkout")
    args = parser.parse_args()
    url = f"sqlite:///{SQLITE_PATH}"
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    say("export-http", f"fill to {args.rows:,} messages")
    fill = [str(PYTHON), str(PROJECT / "bench" / "export_bench.py"), "--fill", str(args.rows)]
    subprocess.run(fill, env=django_env(url), check=True, capture_output=True)
    token = run_python(url, EXPORTER_CODE)
    port = free_port()
    env = django_env(url)
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    log = VAR_DIR / "export-http-server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            make_run_command(port), env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            ready = subprocess.run(["curl", "-sf", "-o", "/dev/null", f"{base}/healthz"])
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        idle = tree_rss(server.pid)
        peaks: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(server.pid, stop, peaks))
        sampler.start()
        target = VAR_DIR / f"export-http.{args.format}"
        started = time.perf_counter()
        subprocess.run(
            [
                "curl", "-sf", "-o", str(target), "-H", f"Authorization: Bearer {token}",
                f"{base}/api/v1/messages/export?format={args.format}",
            ],
            check=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    finally:
        stop_process(server)
    data_rows = target.read_bytes().count(b"\n") - (1 if args.format == "csv" else 0)
    result = {
        "started": datetime.now(UTC).isoformat(),
        "src": str(args.src or PROJECT / "src"),
        "command": " ".join(make_run_command(port)),
        "rows": data_rows,
        "bytes": target.stat().st_size,
        "seconds": round(seconds, 1),
        "rows_per_s": round(data_rows / seconds),
        "server_rss_mb_idle": round(idle / 2**20),
        "server_rss_mb_peak": round(max(peaks) / 2**20),
        "load": os.getloadavg(),
        "warnings": [line for line in log.read_text().splitlines() if "Warning" in line],
    }
    say("export-http", json.dumps(result))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS_DIR / f"export-http-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
