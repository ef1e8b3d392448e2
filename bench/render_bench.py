"""Rendering bounds: how long, and how much memory, the hostile templates of
tests/messaging/test_rendering.py take before they are refused, and a plain message beside them.

Run: `.venv/bin/python bench/render_bench.py [--repeat N]` (no database is touched: the client
and sender are unsaved objects). Prints, per template, the median and worst wall time, the CPU
time, the peak of Python allocations (tracemalloc, in a separate pass) and the outcome.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc

from common import PROJECT, setup_django

sys.path.insert(0, str(PROJECT))  # for tests.messaging
setup_django()

from tests.messaging.test_rendering import HOSTILE

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.messaging.rendering import RenderFailed, render_message

PLAIN = (
    "Hi {{ firstName }}, your order {{ note | truncate: 20 }} ships today. {{ sender.fullName }}"
)


def run_once(source: str, client: Client, sender: User) -> str:
    try:
        render_message(source=source, client=client, sender=sender)
    except RenderFailed as error:
        return f"422 {error.extra.get('limit', '')}".strip()
    return "rendered"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    client = Client(
        first_name="Zoë", last_name="Müller", language="en", attributes={"note": "n" * 500}
    )
    sender = User(first_name="Alex", last_name="Agent")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{'median ms':>9} {'worst ms':>9} {'cpu ms':>7} {'peak MiB':>8}  outcome      template")
    for source in [PLAIN, *HOSTILE]:
        walls, cpus = [], []
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = run_once(source, client, sender)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        tracemalloc.start()
        run_once(source, client, sender)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"{statistics.median(walls) * 1000:9.1f} {max(walls) * 1000:9.1f} "
            f"{statistics.median(cpus) * 1000:7.1f} {peak / 2**20:8.2f}  {outcome:12} "
            f"{source[:60]!r}"
        )
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"process max RSS grew by {(rss_after - rss_before) / 1024:.1f} MiB over the run")


if __name__ == "__main__":
    main()
