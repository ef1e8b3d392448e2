"""The directory where the worker processes of one server start keep their metrics.

prometheus-client's multiprocess mode sums the values each process writes to its own files in
`PROMETHEUS_MULTIPROC_DIR`; it must be chosen before `prometheus_client` is first imported, so
settings.py calls `multiproc_dir_prepare` first thing. No Django here.

- `PROMETHEUS_MULTIPROC_DIR` set by the operator: used as it is (the operator empties it at each
  start, e.g. systemd's `RuntimeDirectory=`).
- A worker process of a server (granian's `--workers`, which are `multiprocessing` children of
  the server's main process): `VAR_DIR/metrics/<host>-<main pid>-<main start time>`, the same
  for every worker of that start and new at the next one. Directories whose main process is gone
  are removed.
- Any other process (the delivery worker, a management command, one-process servers): no
  directory; the process's values stay in its memory and its own /metrics reads them.
"""

import contextlib
import multiprocessing
import os
import shutil
import socket
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown; with the
    pid, it names one process for good (pids are reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold spaces; the start time is field 22.
    return stat.rpartition(")")[2].split()[19]


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start in {"", _start_time(pid) or ""}


def multiproc_dir_prepare(var_dir: Path) -> Path | None:
    """Choose this process's metrics directory (module docstring), export it as
    `PROMETHEUS_MULTIPROC_DIR` and return it; None for a process that keeps its values in memory.
    """
    if given := os.environ.get(ENV):
        return Path(given)
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return None
    host = socket.gethostname().replace("-", "_")
    root = var_dir / "metrics"
    path = root / f"{host}-{parent.pid}-{_start_time(parent.pid) or ''}"
    path.mkdir(parents=True, exist_ok=True)
    for other in root.iterdir():
        other_host, _, rest = other.name.partition("-")
        pid, _, start = rest.partition("-")
        if other != path and other_host == host and pid.isdigit() and not _alive(int(pid), start):
            with contextlib.suppress(OSError):
                shutil.rmtree(other)
    os.environ[ENV] = str(path)
    return path
