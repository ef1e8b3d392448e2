"""The delivery worker: claim due deliveries with a lease, attempt them, record the outcome."""

import logging
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from clientdesk.core import notify
from clientdesk.core.jobs import JobClock
from clientdesk.delivery import channels
from clientdesk.delivery.models import (
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingEndpoint,
)
from clientdesk.delivery.outcomes import Outcome
from clientdesk.delivery.selectors import endpoint_get
from clientdesk.delivery.services import Attempted, attempts_record

log = logging.getLogger(__name__)
IDLE_WAKE_SECONDS = 5.0
# Never spin: even when something looks due, give other workers and the database a breath.
MIN_WAIT_SECONDS = 0.05
# How long a finished attempt may wait to be recorded with others (see Worker.run).
RECORD_DELAY_SECONDS = 0.02


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _workable(endpoint: OutgoingEndpoint | None) -> Q:
    """Deliveries a worker may take at all: webhook ones wait, untouched, while the endpoint is
    disabled (enabling it wakes the workers)."""
    if endpoint is None or not endpoint.enabled:
        return ~Q(channel=Channel.WEBHOOK)
    return Q()


def _due(endpoint: OutgoingEndpoint | None) -> Q:
    now = timezone.now()
    due = Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=DeliveryStatus.SENDING, lease_until__lt=now
    )
    return due & _workable(endpoint)


@dataclass(frozen=True)
class Claimed:
    """Leased deliveries, and the endpoint as it was when they were claimed: every attempt of
    the batch posts to that URL with those secrets, and no attempt reads the database."""

    deliveries: list[Delivery]
    endpoint: OutgoingEndpoint | None


def claim(*, worker: str, limit: int) -> Claimed:
    """Lease up to `limit` due deliveries. On PostgreSQL, SKIP LOCKED lets workers claim side by
    side; on SQLite the IMMEDIATE transaction makes claims take turns."""
    endpoint = endpoint_get()
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        claimed = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(_due(endpoint))
            .order_by("next_attempt_at")[:limit]
        )
        for delivery in claimed:
            if delivery.status == DeliveryStatus.SENDING:
                # The previous holder died mid-attempt; say so on the record.
                DeliveryAttempt.objects.get_or_create(
                    delivery_id=delivery.pk,
                    number=delivery.attempt_count,
                    defaults={
                        "started_at": now,
                        "duration_ms": 0,
                        "error": f"worker {delivery.leased_by} stopped during the attempt",
                        "worker": delivery.leased_by,
                    },
                )
        if claimed:
            Delivery.objects.filter(id__in=[d.pk for d in claimed]).update(
                status=DeliveryStatus.SENDING,
                lease_until=lease_until,
                leased_by=worker,
                attempt_count=F("attempt_count") + 1,
            )
    for delivery in claimed:  # as the UPDATE left them
        delivery.status = DeliveryStatus.SENDING
        delivery.lease_until = lease_until
        delivery.leased_by = worker
        delivery.attempt_count += 1
    return Claimed(claimed, endpoint)


def attempt(delivery: Delivery, endpoint: OutgoingEndpoint | None) -> Attempted:
    """Carry one delivery over its channel. No database access: safe in any thread."""
    started_at = timezone.now()
    try:
        outcome = channels.perform(delivery, endpoint)
    except Exception as error:  # a bug in a channel must not kill the worker or lose the row
        log.exception("delivery %s: attempt crashed", delivery.pk)
        outcome = Outcome(ok=False, duration_ms=0, error=f"internal error: {error}"[:1000])
    return Attempted(delivery, started_at, outcome)


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
        claimed = claim(worker=self.name, limit=self.concurrency)
        attempted = [attempt(d, claimed.endpoint) for d in claimed.deliveries]
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
                        claimed = claim(worker=self.name, limit=free)
                    except DatabaseError:
                        log.exception("worker %s: claiming failed; trying again", self.name)
                        close_old_connections()
                        self.stopping.wait(IDLE_WAKE_SECONDS)
                        continue
                    for delivery in claimed.deliveries:
                        future = pool.submit(attempt, delivery, claimed.endpoint)
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
        next_due = (
            Delivery.objects.filter(_workable(endpoint))
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__isnull=False)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        jobs = self._jobs.seconds_until_next() if self._jobs.next_run else IDLE_WAKE_SECONDS
        if next_due is None:
            return max(MIN_WAIT_SECONDS, min(IDLE_WAKE_SECONDS, jobs))
        seconds = (next_due - timezone.now()).total_seconds()
        return min(IDLE_WAKE_SECONDS, jobs, max(MIN_WAIT_SECONDS, seconds))


def install_signal_handlers(worker: Worker) -> None:
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
