"""`make run` starts, serves a static file and a message export, and stops without a warning
or an error in its output (it printed "ASGI Lifespan errored" at every start, and "must
consume synchronous iterators" when Django's ASGI handler read a static file whole)."""

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx

from tests.servers import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
# Lines a clean start, static file and export may not print.
TROUBLE = re.compile(r"error|warning|traceback|exception|lifespan|must consume", re.IGNORECASE)
STOPPING_RACE = re.compile(r"Unexpected exit from worker-\d+")


def test_make_run_logs_no_warning_or_error_from_start_to_stop(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "MAKEFLAGS", "MAKELEVEL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(PORT=str(port), CLIENTDESK_VAR_DIR=str(tmp_path / "var"))
    log = tmp_path / "make-run.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_answering(f"{base}/healthz", make)
        token = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "manage.py", "create_api_token", "manager"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
        with httpx.Client(base_url=base, timeout=60) as http:
            login = http.get("/accounts/login/")
            assert login.status_code == 200
            styles = re.findall(r'href="(/static/[^"]+\.css)"', login.text)
            assert styles, login.text[:500]
            assert http.get(styles[0]).status_code == 200
            export = http.get(
                "/api/v1/messages/export?format=csv",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert export.status_code == 200
            assert export.content.startswith(b"id,created_at,")
    finally:
        os.killpg(make.pid, signal.SIGINT)
        make.wait(60)
    printed = log.read_text()
    assert f"Clientdesk on {base}/" in printed
    # Ctrl-C reaches granian's worker process as well as its main process; when the worker is
    # the quicker to exit, the main one says so on its way out. Nothing is lost by it.
    trouble = [
        line
        for line in printed.splitlines()
        if TROUBLE.search(line) and not STOPPING_RACE.search(line)
    ]
    assert trouble == [], printed
