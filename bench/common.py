"""What the benchmark scripts share: paths, the bench databases, Django set-up, bench users,
emptying what sends write, percentiles, starting a server and waiting for it, wrk, and CPU
accounting with psutil (the machine is shared)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

PROJECT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
# The bench's own files and SQLite databases (never the app's var/: the loader replaces the
# SQLite file); BENCH_VAR_DIR points it elsewhere.
VAR_DIR = Path(os.environ.get("BENCH_VAR_DIR") or PROJECT / "var" / "bench")
VENV_BIN = PROJECT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
# The PostgreSQL database the benchmark loads and writes; BENCH_PG_URL points it elsewhere.
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/clientdesk_bench")
SQLITE_URL = f"sqlite:///{VAR_DIR / 'clientdesk.sqlite3'}"
BODY = "Hello {{ firstName }}, your monthly statement is ready in your online cabinet."
# What a send writes, children first (SQLite deletes in this order; PostgreSQL truncates).
SENT_TABLES = (  # noqa: SIM905
    "followup_followupdue followup_conversation delivery_deliveryattempt delivery_delivery "
    "messaging_idempotencykey messaging_message audit_activityevent audit_auditentry "
    "audit_auditrecord audit_audittreenode audit_auditcheckpoint core_liveevent"
).split()


def django_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a child process whose Django settings pick `database_url`."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CLIENTDESK_VAR_DIR": str(VAR_DIR),
        "DJANGO_SETTINGS_MODULE": "clientdesk.settings",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        **extra,
    }


def setup_django(**env: str) -> None:
    """Set up Django in this process (DATABASE_URL from the environment unless given)."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")
    os.environ.setdefault("CLIENTDESK_VAR_DIR", str(VAR_DIR))
    import django

    django.setup()


def bench_users() -> tuple[Any, Any]:
    """The superuser `bench-admin` and the Agent `bench-agent` (fresh objects: no cached
    permissions)."""
    from django.contrib.auth.models import Group

    from clientdesk.accounts.models import User

    flags = {"is_active": True, "is_superuser": True, "is_staff": True}
    admin, _ = User.objects.update_or_create(username="bench-admin", defaults=flags)
    names = {"is_active": True, "first_name": "Bench", "last_name": "Agent"}
    agent, _ = User.objects.update_or_create(username="bench-agent", defaults=names)
    agent.groups.set([Group.objects.get(name="Agent")])
    return admin, User.objects.get(pk=agent.pk)


def empty_sent_tables() -> None:
    """Empty what sends write, the whole ledger included: a ledger with records but not their
    tree, or a checkpoint beyond its records, stops the workers' sequencer."""
    from django.db import connection, transaction

    from clientdesk.audit.append_only import ledger_maintenance

    with transaction.atomic(), ledger_maintenance(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # TRUNCATE passes the append-only triggers
            cursor.execute(f"TRUNCATE {', '.join(SENT_TABLES)} CASCADE")
        else:
            for table in SENT_TABLES:
                cursor.execute(f"DELETE FROM {table}")


def say(tag: str, message: str) -> None:
    print(f"  [{tag}] {message}", flush=True)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of durations given in seconds, in milliseconds; percentiles are
    linear between closest ranks (one value is its own every percentile)."""
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"n": 0}
    cuts = statistics.quantiles(ms * 2 if len(ms) == 1 else ms, n=100, method="inclusive")
    return {
        "n": len(ms),
        **{f"p{p}_ms": round(cuts[p - 1], 3) for p in (50, 95, 99)},
        "max_ms": round(max(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(check: Any, timeout: float, every: float = 0.2) -> bool:
    """Whether `check()` became true within `timeout` seconds (asked every `every` s)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def stop(proc: subprocess.Popen[bytes], group: bool = False) -> int:
    """SIGTERM (to its process group with `group`), SIGKILL after 15 s; the exit code."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM) if group else proc.terminate()
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
        return proc.wait()


@contextlib.contextmanager
def served(
    command: str | list[str],
    port: int,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    path: str = "/healthz",
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own process group until `path` on `port` answers 200; stop the
    whole group on exit."""
    args = shlex.split(command) if isinstance(command, str) else command
    with open(log or os.devnull, "ab") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def up() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"{args[0]} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
        return False

    try:
        if not until(up, 60):
            raise SystemExit(f"{args[0]} did not answer on port {port}")
        yield proc
    finally:
        stop(proc, group=True)


def wrk(
    url: str, *, duration: int, connections: int, threads: int = 2, script: Path | None = None
) -> str:
    """wrk's report for `connections` keep-alive connections over `duration` seconds."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    command += ["-s", str(script)] if script else []
    return subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process (and, with `children`, of its live descendants);
    0 for a process that is gone."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        for p in [process, *(process.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(p.cpu_times()[:2])
    return total


class OtherWork:
    """CPU seconds used, while a part runs, by processes that are neither this benchmark's
    descendants nor `ours` (say, the PostgreSQL backends serving the bench database)."""

    def __init__(self) -> None:
        self.before = self._table()
        self.started = time.monotonic()

    @staticmethod
    def _table() -> dict[int, tuple[str, float]]:
        return {
            p.pid: (p.info["name"], sum(p.info["cpu_times"][:2]))
            for p in psutil.process_iter(["name", "cpu_times"])
            if p.info["cpu_times"] is not None
        }

    def finish(self, ours: set[int] | None = None) -> dict[str, float]:
        mine = {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))}
        other = 0.0
        for pid, (name, cpu) in self._table().items():
            earlier = self.before.get(pid)
            if pid not in mine | (ours or set()):
                other += cpu - (earlier[1] if earlier and earlier[0] == name else 0.0)
        seconds = time.monotonic() - self.started
        return {"seconds": round(seconds, 1), "other_cores_busy": round(other / seconds, 2)}
