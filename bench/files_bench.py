"""Upload and download of a 10 MB file through the web tier (the Procfile's `web`: granian, WSGI,
2 workers × 8 threads) against the same transfer with a bare file server (nginx: a static file,
and a POST whose body it reads and drops), each by `curl` on this machine; and the web tier's
RSS while 20 uploads of 10 MB run at once (streamed to disk, it should stay flat).

    .venv/bin/python bench/files_bench.py [--database sqlite|postgresql|both]
                                          [--storage fs|s3|both] [--runs 5] [--concurrent 20]

PostgreSQL: BENCH_FILES_PG_URL (default postgres://postgres@127.0.0.1:5432/clientdesk_files_bench),
a database this script drops and creates. SQLite and the files: under BENCH_VAR_DIR (var/bench).
S3: a moto server on loopback (the bucket API over HTTP, as in the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg

from common import PROJECT, PYTHON, VAR_DIR, VENV_BIN, django_env, free_port, served, until

PG_URL = os.environ.get(
    "BENCH_FILES_PG_URL", "postgres://postgres@127.0.0.1:5432/clientdesk_files_bench"
)
SIZE = 10 * 1024 * 1024
S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 20m;
        location = /healthz {{ return 200; }}
        location /files/ {{ alias {root}/static/; }}
        # PUT writes the body to a file (nginx's WebDAV module), as an upload to a file server.
        location /upload/ {{
            alias {root}/uploaded/;
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""


def fresh_database(kind: str) -> str:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        path = VAR_DIR / "files_bench.sqlite3"
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
        [str(PYTHON), "manage.py", "migrate", "-v0"], cwd=PROJECT, env=django_env(url), check=True
    )
    return url


def agent_token(env: dict[str, str]) -> str:
    code = (
        "import django; django.setup()\n"
        "from django.contrib.auth.models import Group\n"
        "from clientdesk.accounts.models import User\n"
        "from clientdesk.accounts.services import api_token_create\n"
        "u, _ = User.objects.get_or_create(username='bench-files')\n"
        "u.groups.set([Group.objects.get(name='Agent')])\n"
        "print(api_token_create(user=u)[1])\n"
    )
    done = subprocess.run(
        [str(PYTHON), "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def curl(args: list[str]) -> tuple[float, int]:
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def mb_per_s(times: list[float]) -> dict[str, float]:
    median = statistics.median(times)
    return {"median_s": round(median, 3), "MB_per_s": round(SIZE / median / 1e6, 1)}


def rss_mb(root: psutil.Process) -> float:
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 1e6


def per_process_rss(root: psutil.Process) -> dict[int, float]:
    found = {}
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            found[p.pid] = p.memory_info().rss / 1e6
    return found


def bare_server(sample: Path, runs: int) -> dict[str, object]:
    root = VAR_DIR / "files-bench-nginx"
    shutil.rmtree(root, ignore_errors=True)
    (root / "static").mkdir(parents=True)
    (root / "uploaded").mkdir()
    (root / "uploaded").chmod(0o777)  # nginx's workers may run as another user
    shutil.copy(sample, root / "static" / "sample.pdf")
    port = free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    with served(["nginx", "-p", str(root), "-c", str(root / "nginx.conf")], port):
        up = [
            curl(["-T", str(sample), f"http://127.0.0.1:{port}/upload/{n}.pdf"])
            for n in range(runs)
        ]
        down = [curl([f"http://127.0.0.1:{port}/files/sample.pdf"]) for _ in range(runs)]
    assert all(code == 201 for _, code in up), up
    assert all(code == 200 for _, code in down), down
    return {"upload": mb_per_s([t for t, _ in up]), "download": mb_per_s([t for t, _ in down])}


def burst(
    server: psutil.Process, base: str, auth: list[str], sample: Path, concurrent: int, tag: str
) -> dict[str, float]:
    """`concurrent` uploads at once; the server's RSS before and at its peak meanwhile."""
    idle = rss_mb(server)
    idle_each = per_process_rss(server)
    peak = idle
    peak_each = dict(idle_each)
    stop = threading.Event()

    def sample_rss() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(server))
            for pid, value in per_process_rss(server).items():
                peak_each[pid] = max(peak_each.get(pid, 0.0), value)
            time.sleep(0.05)

    watcher = threading.Thread(target=sample_rss, daemon=True)
    watcher.start()
    started = time.monotonic()
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *auth]
    uploads = [
        subprocess.Popen(
            [*command, "-F", f"file=@{sample};filename={tag}-{n}.pdf", f"{base}/api/v1/files"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(concurrent)
    ]
    codes = [u.communicate()[0] for u in uploads]
    wall = time.monotonic() - started
    stop.set()
    watcher.join()
    assert all(code == "201" for code in codes), codes
    return {
        "wall_s": round(wall, 2),
        "rss_idle_mb": round(idle, 1),
        "rss_peak_mb": round(peak, 1),
        "largest_process_growth_mb": round(
            max(peak_each[p] - idle_each.get(p, 0.0) for p in peak_each), 1
        ),
    }


def web_tier(
    url: str, storage: str, sample: Path, runs: int, concurrent: int, s3: str
) -> dict[str, object]:
    files_dir = VAR_DIR / "files"
    shutil.rmtree(files_dir, ignore_errors=True)
    extra = {
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "8",
        "CLIENTDESK_CLIENT_UPLOADS_PER_HOUR": "1000",
    }
    if storage == "s3":
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.resource(
            "s3",
            endpoint_url=s3,
            region_name="us-east-1",
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=bucket)
        extra |= {
            **S3_KEYS,
            "CLIENTDESK_FILES_URL": f"s3://{bucket}?endpoint_url={s3}&region_name=us-east-1",
        }
    port = free_port()
    env = django_env(url, PORT=str(port), **extra)
    token = agent_token(env)
    web = next(
        line.split(":", 1)[1].strip()
        for line in (PROJECT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    auth = ["-H", f"Authorization: Bearer {token}"]
    base = f"http://127.0.0.1:{port}"
    with served(
        ["bash", "-c", f"exec {web}"], port, env=env, log=VAR_DIR / "files-bench-web.log"
    ) as proc:
        server = psutil.Process(proc.pid)
        ids = []
        up_times = []
        for _ in range(runs):
            done = subprocess.run(
                [
                    "curl",
                    "-s",
                    "-w",
                    "\n%{time_total} %{http_code}",
                    *auth,
                    "-F",
                    f"file=@{sample};filename=sample.pdf",
                    f"{base}/api/v1/files",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
            seconds, code = done[-1].split()
            assert code == "201", done
            ids.append(json.loads(done[0])["id"])
            up_times.append(float(seconds))
        down = [curl([*auth, f"{base}/api/v1/files/{ids[0]}"]) for _ in range(runs)]
        assert all(code == 200 for _, code in down), down
        # RSS while `concurrent` uploads of 10 MB run at once, twice: the first burst also
        # pays each thread's first use (a storage client per thread), the second shows what
        # uploads themselves hold.
        bursts = [burst(server, base, auth, sample, concurrent, f"b{n}") for n in (1, 2)]
    return {
        "upload": mb_per_s(up_times),
        "download": mb_per_s([t for t, _ in down]),
        f"{concurrent}_concurrent_uploads": bursts,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--storage", choices=["fs", "s3", "both"], default="fs")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    sample = VAR_DIR / "files-bench-sample.pdf"
    sample.write_bytes(b"%PDF-1.7\n" + random.Random(19).randbytes(SIZE - 9))
    results: dict[str, object] = {
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    results["bare nginx"] = bare_server(sample, args.runs)
    print(json.dumps({"bare nginx": results["bare nginx"]}), flush=True)
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    storages = ["fs", "s3"] if args.storage == "both" else [args.storage]
    s3_url = ""
    moto = None
    if "s3" in storages:
        s3_port = free_port()
        moto = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **S3_KEYS},
        )
        s3_url = f"http://127.0.0.1:{s3_port}"
        import httpx

        until(lambda: _answers(httpx, s3_url), 60)
    try:
        for database in databases:
            url = fresh_database(database)
            for storage in storages:
                key = f"web {database} {storage}"
                results[key] = web_tier(url, storage, sample, args.runs, args.concurrent, s3_url)
                print(json.dumps({key: results[key]}), flush=True)
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(10)
    results["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(results, indent=2))


def _answers(httpx: object, url: str) -> bool:
    try:
        return httpx.get(f"{url}/moto-api/", timeout=2).status_code < 500  # type: ignore[attr-defined]
    except Exception:
        return False


if __name__ == "__main__":
    main()
