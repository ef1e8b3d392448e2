"""Small helpers shared by the benchmark scripts."""

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

PROJECT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
VAR_DIR = PROJECT / "var" / "bench"
SQLITE_PATH = VAR_DIR / "clientdesk.sqlite3"
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
PG_DB = "clientdesk_bench"
PG_URL = f"{PG_SERVER}/{PG_DB}"
SQLITE_URL = f"sqlite:///{SQLITE_PATH}"
VENV_BIN = PROJECT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"


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
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
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


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks."""
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
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
    }


def django_env(database_url: str) -> dict[str, str]:
    """Environment for a child process whose Django settings pick `database_url`."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        CLIENTDESK_VAR_DIR=str(VAR_DIR),
        DJANGO_SETTINGS_MODULE="clientdesk.settings",
        DEBUG="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- Who else is using the machine --------------------------------------------------------
#
# The machine is shared, and the load average counts the benchmark's own work. So each part
# also records the CPU time used by processes that are not the benchmark's (not descendants of
# bench/run.py and not PostgreSQL serving the bench database). Processes that start and end
# within one part are missed, so this is a lower bound.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_table() -> dict[int, tuple[float, int, str]]:
    """pid -> (CPU seconds used so far, parent pid, command name), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        # fields[0] is field 3 (state) of proc(5): ppid is 4, utime 14, stime 15.
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        table[int(entry.name)] = (cpu, int(fields[1]), name)
    return table


def cpu_seconds(pid: int) -> float | None:
    entry = process_table().get(pid)
    return None if entry is None else entry[0]


def descendants(table: dict[int, tuple[float, int, str]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def machine_busy(seconds: float = 3.0) -> float:
    """Fraction of all CPUs busy over `seconds` (from /proc/stat); call while the benchmark
    is idle to see whether anything else is running."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle

    total_a, idle_a = sample()
    time.sleep(seconds)
    total_b, idle_b = sample()
    total = total_b - total_a
    return 0.0 if total <= 0 else round(1 - (idle_b - idle_a) / total, 3)
