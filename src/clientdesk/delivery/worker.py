"""The delivery worker: claim due deliveries with a lease, attempt them, record the outcome."""

import logging
import os
import signal
import socket
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
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
)
from clientdesk.delivery.outcomes import Outcome
from clientdesk.delivery.selectors import endpoint_enabled
from clientdesk.delivery.services import attempt_record

log = logging.getLogger(__name__)
IDLE_WAKE_SECONDS = 5.0
# Never spin: even when something looks due, give other workers and the database a breath.
MIN_WAIT_SECONDS = 0.05


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _workable() -> Q:
    """Deliveries a worker may take at all: webhook ones wait, untouched, while the endpoint is
    disabled (enabling it wakes the workers)."""
    if not endpoint_enabled():
        return ~Q(channel=Channel.WEBHOOK)
    return Q()


def _due() -> Q:
    now = timezone.now()
    due = Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=DeliveryStatus.SENDING, lease_until__lt=now
    )
    return due & _workable()


def claim(*, worker: str, limit: int) -> list[Delivery]:
    """Lease up to `limit` due deliveries. On PostgreSQL, SKIP LOCKED lets workers claim side by
    side; on SQLite the IMMEDIATE transaction makes claims take turns."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(_due())
            .order_by("next_attempt_at")
            .values("id", "status", "attempt_count", "leased_by")[:limit]
        )
        for row in rows:
            if row["status"] == DeliveryStatus.SENDING:
                # The previous holder died mid-attempt; say so on the record.
                DeliveryAttempt.objects.get_or_create(
                    delivery_id=row["id"],
                    number=row["attempt_count"],
                    defaults={
                        "started_at": now,
                        "duration_ms": 0,
                        "error": f"worker {row['leased_by']} stopped during the attempt",
                        "worker": row["leased_by"],
                    },
                )
        ids = [row["id"] for row in rows]
        if ids:
            Delivery.objects.filter(id__in=ids).update(
                status=DeliveryStatus.SENDING,
                lease_until=lease_until,
                leased_by=worker,
                attempt_count=F("attempt_count") + 1,
            )
    return list(Delivery.objects.filter(id__in=ids).order_by("next_attempt_at"))


def attempt(delivery: Delivery, *, worker: str) -> Delivery:
    started_at = timezone.now()
    try:
        outcome = channels.perform(delivery)
    except Exception as error:  # a bug in a channel must not kill the worker or lose the row
        log.exception("delivery %s: attempt crashed", delivery.pk)
        outcome = Outcome(ok=False, duration_ms=0, error=f"internal error: {error}"[:1000])
    return attempt_record(delivery=delivery, worker=worker, started_at=started_at, outcome=outcome)


def _attempt_in_thread(delivery: Delivery, worker: str) -> None:
    try:
        attempt(delivery, worker=worker)
    finally:
        close_old_connections()
        connection.close()


class Worker:
    def __init__(self, *, concurrency: int = 4, name: str | None = None) -> None:
        self.name = name or worker_name()
        self.concurrency = concurrency
        self.stopping = threading.Event()
        self._jobs = JobClock()  # the apps' periodic jobs (core.jobs), between deliveries
        self._claim_at = max(1, concurrency // 2)

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def run_once(self) -> list[Delivery]:
        """Attempt, one after another in this thread, a batch of what is due now."""
        return [
            attempt(d, worker=self.name) for d in claim(worker=self.name, limit=self.concurrency)
        ]

    def run(self) -> None:
        log.info("worker %s started (concurrency %d)", self.name, self.concurrency)
        in_flight: set[Future[None]] = set()
        with notify.waiter() as waiter, ThreadPoolExecutor(self.concurrency) as pool:
            while not self.stopping.is_set():
                self._jobs.run_due()
                in_flight = {f for f in in_flight if not f.done()}
                free = self.concurrency - len(in_flight)
                # Claim in batches: once half the slots are free (or nothing is in flight), so
                # a busy worker's claim transaction serves several deliveries, not one each.
                batch = free >= self._claim_at or not in_flight
                claimed = claim(worker=self.name, limit=free) if free and batch else []
                in_flight |= {pool.submit(_attempt_in_thread, d, self.name) for d in claimed}
                if claimed and len(claimed) == free:
                    continue  # the queue may hold more
                if in_flight and (not batch or len(in_flight) == self.concurrency):
                    wait(in_flight, timeout=IDLE_WAKE_SECONDS, return_when=FIRST_COMPLETED)
                else:
                    waiter.wait(self._idle_timeout())
            wait(in_flight)
        log.info("worker %s stopped", self.name)

    def _idle_timeout(self) -> float:
        """Sleep until new work is announced, the next retry is due, or the idle timeout."""
        next_due = (
            Delivery.objects.filter(_workable())
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
