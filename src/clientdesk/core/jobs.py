"""Periodic jobs the worker runs between deliveries. Each app registers its own in `ready()`
(the ledger's sequencer and checkpoints, the follow-up clocks, pruning old live events), so
the worker knows none of them by name.

A job is a function of the current time that returns when it wants to run again (None: after
its interval). A job that raises is logged and tried again after its interval: deliveries and
the other jobs go on. Jobs must be safe to run in several workers at once (they claim their
rows with SKIP LOCKED or take their own lock)."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

log = logging.getLogger(__name__)

JobRun = Callable[[datetime], datetime | None]


@dataclass
class Job:
    name: str
    run: JobRun
    every_seconds: float


_JOBS: dict[str, Job] = {}


def job_register(*, name: str, run: JobRun, every_seconds: float) -> None:
    """Run `run` at least every `every_seconds` in each worker; sooner when it asks."""
    _JOBS[name] = Job(name=name, run=run, every_seconds=every_seconds)


def jobs_registered() -> list[Job]:
    return list(_JOBS.values())


@dataclass
class JobClock:
    """When each job next runs, in one worker (monotonic seconds)."""

    next_run: dict[str, float] = field(default_factory=dict)

    def run_due(self) -> None:
        for job in jobs_registered():
            now = time.monotonic()
            if now < self.next_run.get(job.name, 0.0):
                continue
            self.next_run[job.name] = now + job.every_seconds
            try:
                wanted = job.run(timezone.now())
            except Exception:
                # Deliveries and the other jobs go on; this one's rows wait for its next run.
                log.exception("job %s failed", job.name)
                continue
            if wanted is not None:
                soon = (wanted - timezone.now()).total_seconds()
                self.next_run[job.name] = now + max(0.0, min(job.every_seconds, soon))

    def seconds_until_next(self) -> float:
        if not self.next_run:
            return 0.0
        return max(0.0, min(self.next_run.values()) - time.monotonic())
