"""The Procfile's processes as an operator runs them (JSON logs, metrics on), with their stderr
and stdout kept apart, and a reader of the Prometheus text they serve."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import ROOT, child_env, free_port, procfile_command

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Tier:
    name: str
    url: str  # where its /metrics is served
    process: subprocess.Popen[bytes]
    stderr: Path
    stdout: Path

    def log_lines(self) -> list[str]:
        return [line for line in self.stderr.read_text().splitlines() if line.strip()]


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code in {200, 401}:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer: {log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def tier(name: str, tmp: Path, **env: str) -> Iterator[Tier]:
    """The Procfile's `name` (web, events, worker) on free loopback ports, on the test database,
    logging JSON (granian's main process too); a worker serves /metrics on its own port."""
    port = free_port()
    environment = child_env(
        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        HOST="127.0.0.1",
        PORT=str(port),
        EVENTS_PORT=str(port),
        CLIENTDESK_WORKER_METRICS_PORT=str(port),
        CLIENTDESK_LOG_FORMAT="json",
        GRANIAN_LOG_CONFIG=str(ROOT / "deploy" / "granian-logging.json"),
        CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1",
        **env,
    )
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    stderr, stdout = tmp / f"{name}.err", tmp / f"{name}.out"
    with open(stderr, "wb") as err, open(stdout, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_command(name)}"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # /healthz, so that a test may count its own requests to /livez.
        _wait(f"{url}/metrics" if name == "worker" else f"{url}/healthz", process, stderr)
        yield Tier(name, url, process, stderr, stdout)
    finally:
        stop(process)


def scrape(url: str, token: str | None = None) -> Series:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


def wait_until(check: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not callable(check) or not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.1)
