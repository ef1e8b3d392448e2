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

from django.db import Error as DatabaseFailure  # any: refused, dropped, closed, timed out
from django.db import InterfaceError, OperationalError, close_old_connections
from django.utils import timezone

from clientdesk.core import notify
from clientdesk.core.backoff import Backoff
from clientdesk.core.jobs import JobClock
from clientdesk.delivery.models import Delivery, OutgoingEndpoint
from clientdesk.delivery.services.queue import (
    Attempted,
    attempts_record,
    deliveries_claim,
    deliveries_next_due_at,
    deliveries_release,
    delivery_attempt,
)

log = logging.getLogger(__name__)
IDLE_WAKE_SECONDS = 5.0
# Never spin: even when something looks due, give other workers and the database a breath.
MIN_WAIT_SECONDS = 0.05
# How long a finished attempt may wait to be recorded with others (see Worker.run).
RECORD_DELAY_SECONDS = 0.02
# Stopping, how long the attempts in flight may take to finish before they are released.
STOP_GRACE_SECONDS = 5.0


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
        self._waiter: notify.Waiter | None = None

    def stop(self, *_: Any) -> None:
        """Stop soon (a signal handler: it also wakes the loop from its wait)."""
        self.stopping.set()
        if self._waiter is not None:
            self._waiter.poke()

    def run_once(self) -> list[Delivery]:
        """Attempt, one after another in this thread, a batch of what is due now."""
        claimed = deliveries_claim(worker=self.name, limit=self.concurrency)
        attempted = [
            delivery_attempt(delivery=d, endpoint=claimed.endpoint) for d in claimed.deliveries
        ]
        return attempts_record(worker=self.name, attempted=attempted)

    def run(self) -> int:
        """Until `stop()`. A database that goes away (restarts, drops the connection) is logged
        and waited out with backoff: nothing is claimed meanwhile, attempts already carried
        wait to be recorded, and work resumes as soon as it answers again. Stopping, the
        worker waits up to STOP_GRACE_SECONDS for its attempts in flight, records what
        finished and releases the rest (`deliveries_release`): another worker takes them at
        once. Returns how many attempts it left running (their threads still carry them: the
        caller exits the process without waiting for them)."""
        log.info("worker %s started (concurrency %d)", self.name, self.concurrency)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="attempt")
        self._in_flight: dict[Future[Attempted], Delivery] = {}
        self._finished: list[Attempted] = []
        self._first_finished_at = 0.0
        away = Backoff()
        try:
            with notify.waiter() as waiter:
                self._waiter = waiter
                while not self.stopping.is_set():
                    try:
                        timeout = self._step(pool, waiter)
                    except DatabaseFailure as error:
                        delay = away.failed(log, f"worker {self.name}: the database failed", error)
                        close_old_connections()
                        self.stopping.wait(delay)
                        continue
                    away.succeeded(log, f"worker {self.name}: the database answers again")
                    # Wakes when an attempt finishes, new work is announced, or at the timeout.
                    waiter.wait(timeout)
                self._waiter = None
                left = self._stop()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        log.info("worker %s stopped", self.name)
        return left

    def _step(self, pool: ThreadPoolExecutor, waiter: notify.Waiter) -> float:
        """One turn of the loop: jobs, recording, claiming. Returns how long to wait next."""
        self._jobs.run_due()
        in_flight = self._in_flight
        done = [f for f in in_flight if f.done()]
        if done:
            if not self._finished:
                self._first_finished_at = time.monotonic()
            self._finished += [f.result() for f in done]
            for f in done:
                del in_flight[f]
        free = self.concurrency - len(in_flight)
        # Work in batches: record what finished and claim more once half the slots are free
        # (or nothing is in flight), so one transaction of each kind serves several
        # deliveries. A finished attempt waits at most RECORD_DELAY_SECONDS for others.
        batch = free >= self._claim_at or not in_flight
        held = time.monotonic() - self._first_finished_at
        if self._finished and (batch or held >= RECORD_DELAY_SECONDS):
            self._record_finished()
        if free and batch:
            claimed = deliveries_claim(worker=self.name, limit=free)
            for delivery in claimed.deliveries:
                future = pool.submit(delivery_attempt, delivery=delivery, endpoint=claimed.endpoint)
                future.add_done_callback(lambda _: waiter.poke())
                in_flight[future] = delivery
            if len(claimed.deliveries) == free:
                return 0.0  # the queue may hold more
            return self._idle_timeout(claimed.endpoint)
        if self._finished:
            return max(0.0, RECORD_DELAY_SECONDS - held)
        return IDLE_WAKE_SECONDS

    def _record_finished(self) -> None:
        """Record the finished attempts. A database that is away (the connection failed) gets
        them again when it answers: they are kept, and no attempt is made twice for want of
        its record. A database that answered and refused them (a record it will never take)
        must not hold up every other delivery: they are dropped, and their leases run out and
        they go again under the same webhook-id (at least once); the worker goes on."""
        try:
            attempts_record(worker=self.name, attempted=self._finished)
        except (OperationalError, InterfaceError):
            raise
        except DatabaseFailure:
            log.exception(
                "worker %s: the database refused the records of %d attempts; they go again "
                "when their leases run out",
                self.name,
                len(self._finished),
            )
            close_old_connections()
        self._finished = []

    def _stop(self) -> int:
        """Record what finished, wait a little for what is in flight, release the rest."""
        done, running = wait(self._in_flight, timeout=STOP_GRACE_SECONDS)
        finished = self._finished + [f.result() for f in done]
        try:
            attempts_record(worker=self.name, attempted=finished)
        except DatabaseFailure:
            # Their leases run out and they go again, under the same webhook-id (at least once).
            log.exception("worker %s: recording %d attempts failed", self.name, len(finished))
            close_old_connections()
        if running:
            ids = [self._in_flight[f].pk for f in running]
            try:
                released = deliveries_release(worker=self.name, delivery_ids=ids)
            except DatabaseFailure:
                log.exception("worker %s: releasing %d deliveries failed", self.name, len(ids))
                close_old_connections()
            else:
                log.warning(
                    "worker %s: %d attempts still running after %.0f s; released %d deliveries "
                    "for another worker",
                    self.name,
                    len(running),
                    STOP_GRACE_SECONDS,
                    released,
                )
        return len(running)

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
