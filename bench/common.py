"""What the benchmark scripts share: paths, the bench databases, percentiles, starting a server
and waiting for it, wrk, and CPU accounting with psutil (the machine is shared)."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
VAR_DIR = PROJECT / "var" / "bench"
VENV_BIN = PROJECT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
# The PostgreSQL database the benchmark loads and writes; BENCH_PG_URL points it elsewhere.
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/clientdesk_bench")
SQLITE_URL = f"sqlite:///{VAR_DIR / 'clientdesk.sqlite3'}"


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        **{f"p{p}_ms": round(percentile(ms, p), 3) for p in (50, 95, 99)},
        "max_ms": round(max(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
    }


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(
    command: str, port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own process group until /healthz on `port` answers 200; stop the
    whole group on exit."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        shlex.split(command), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command!r} exited with {proc.returncode}")
            url = f"http://127.0.0.1:{port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command!r} did not answer on port {port}")
            time.sleep(0.2)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def wrk(
    url: str, *, duration: int, connections: int, threads: int = 2, script: Path | None = None
) -> str:
    """wrk's report for `connections` keep-alive connections over `duration` seconds."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    return subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU seconds of a process (and, with `children`, of its live descendants)."""
    try:
        process = psutil.Process(pid)
        family = [process, *(process.children(recursive=True) if children else [])]
        total = 0.0
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = p.cpu_times()
                total += times.user + times.system
        return total
    except psutil.NoSuchProcess:
        return None


class OtherWork:
    """CPU seconds used, while a part runs, by processes that are neither this benchmark's
    descendants nor `ours` (say, the PostgreSQL backends serving the bench database)."""

    def __init__(self) -> None:
        self.before = self._table()
        self.started = time.monotonic()

    @staticmethod
    def _table() -> dict[int, tuple[str, float]]:
        table = {}
        for p in psutil.process_iter(["name", "cpu_times"]):
            times = p.info["cpu_times"]
            if times is not None:
                table[p.pid] = (p.info["name"], times.user + times.system)
        return table

    def finish(self, ours: set[int] = frozenset()) -> dict[str, float]:  # type: ignore[assignment]
        mine = {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True)), *ours}
        other = 0.0
        for pid, (name, cpu) in self._table().items():
            earlier = self.before.get(pid)
            if pid not in mine:
                other += cpu - (earlier[1] if earlier and earlier[0] == name else 0.0)
        seconds = time.monotonic() - self.started
        return {"seconds": round(seconds, 1), "other_cores_busy": round(other / seconds, 2)}
