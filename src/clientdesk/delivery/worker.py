"""The delivery worker: the loop that drives the queue (`services/queue.py`) in batches, with
the apps' periodic jobs between them."""

import logging
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from clientdesk.core import notify
from clientdesk.core.jobs import JobClock
from clientdesk.delivery.models import Delivery, OutgoingEndpoint
from clientdesk.delivery.services.queue import (
    Attempted,
    attempts_record,
    deliveries_claim,
    deliveries_next_due_at,
    delivery_attempt,
)

log = logging.getLogger(__name__)
IDLE_WAKE_SECONDS = 5.0
# Never spin: even when something looks due, give other workers and the database a breath.
MIN_WAIT_SECONDS = 0.05
# How long a finished attempt may wait to be recorded with others (see Worker.run).
RECORD_DELAY_SECONDS = 0.02


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims due deliveries in batches, attempts them side by side in a thread pool (the
    threads only carry; they never touch the database), and records what finished, a batch
    in one transaction, from the main thread."""

    def __init__(self, *, concurrency: int = 16, name: str | None = None) -> None:
        self.name = name or worker_name()
        self.concurrency = concurrency
        self.stopping = threading.Event()
        self._jobs = JobClock()  # the apps' periodic jobs (core.jobs), between deliveries
        self._claim_at = max(1, concurrency // 2)

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def run_once(self) -> list[Delivery]:
        """Attempt, one after another in this thread, a batch of what is due now."""
        claimed = deliveries_claim(worker=self.name, limit=self.concurrency)
        attempted = [
            delivery_attempt(delivery=d, endpoint=claimed.endpoint) for d in claimed.deliveries
        ]
        return attempts_record(worker=self.name, attempted=attempted)

    def run(self) -> None:
        log.info("worker %s started (concurrency %d)", self.name, self.concurrency)
        in_flight: set[Future[Attempted]] = set()
        finished: list[Attempted] = []
        first_finished_at = 0.0
        with notify.waiter() as waiter, ThreadPoolExecutor(self.concurrency) as pool:
            while not self.stopping.is_set():
                self._jobs.run_due()
                done = {f for f in in_flight if f.done()}
                if done:
                    in_flight -= done
                    if not finished:
                        first_finished_at = time.monotonic()
                    finished += [f.result() for f in done]
                free = self.concurrency - len(in_flight)
                # Work in batches: record what finished and claim more once half the slots are
                # free (or nothing is in flight), so one transaction of each kind serves several
                # deliveries. A finished attempt waits at most RECORD_DELAY_SECONDS for others.
                batch = free >= self._claim_at or not in_flight
                held = time.monotonic() - first_finished_at
                if finished and (batch or held >= RECORD_DELAY_SECONDS):
                    self._record(finished)
                    finished = []
                if free and batch:
                    try:
                        claimed = deliveries_claim(worker=self.name, limit=free)
                    except DatabaseError:
                        log.exception("worker %s: claiming failed; trying again", self.name)
                        close_old_connections()
                        self.stopping.wait(IDLE_WAKE_SECONDS)
                        continue
                    for delivery in claimed.deliveries:
                        future = pool.submit(
                            delivery_attempt, delivery=delivery, endpoint=claimed.endpoint
                        )
                        future.add_done_callback(lambda _: waiter.poke())
                        in_flight.add(future)
                    if len(claimed.deliveries) == free:
                        continue  # the queue may hold more
                    timeout = self._idle_timeout(claimed.endpoint)
                elif finished:
                    timeout = max(0.0, RECORD_DELAY_SECONDS - held)
                else:
                    timeout = IDLE_WAKE_SECONDS
                # Wakes when an attempt finishes, new work is announced, or at the timeout.
                waiter.wait(timeout)
            wait(in_flight)
            self._record(finished + [f.result() for f in in_flight])
        log.info("worker %s stopped", self.name)

    def _record(self, finished: list[Attempted]) -> None:
        try:
            attempts_record(worker=self.name, attempted=finished)
        except DatabaseError:
            # Nothing is lost: the leases run out and the deliveries go again, under the same
            # webhook-id (at least once). The worker goes on.
            log.exception("worker %s: recording %d attempts failed", self.name, len(finished))
            close_old_connections()

    def _idle_timeout(self, endpoint: OutgoingEndpoint | None) -> float:
        """Sleep until new work is announced, the next retry is due, or the idle timeout.
        `endpoint`: as the claim just read it."""
        next_due = deliveries_next_due_at(endpoint=endpoint)
        jobs = self._jobs.seconds_until_next() if self._jobs.next_run else IDLE_WAKE_SECONDS
        if next_due is None:
            return max(MIN_WAIT_SECONDS, min(IDLE_WAKE_SECONDS, jobs))
        seconds = (next_due - timezone.now()).total_seconds()
        return min(IDLE_WAKE_SECONDS, jobs, max(MIN_WAIT_SECONDS, seconds))


def install_signal_handlers(worker: Worker) -> None:
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
