"""The delivery queue: each delivery's way from queued, through leased attempts, to delivered or
failed.

The lease lifecycle lives here whole: `deliveries_claim` sets a lease, `delivery_attempt` carries
the delivery under it (no database), `attempts_record` clears it with the outcome. A lease that
runs out (its worker died) is taken over by the next claim."""

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, ActivityType
from clientdesk.audit.services import activity_build, audit_append
from clientdesk.clients.models import Client
from clientdesk.core import notify
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.live.recording import live_events_record
from clientdesk.core.time import iso_utc
from clientdesk.delivery import channels, policy
from clientdesk.delivery.models import (
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingEndpoint,
)
from clientdesk.delivery.observe import attempts_observed
from clientdesk.delivery.outcomes import Outcome
from clientdesk.delivery.selectors import endpoint_get
from clientdesk.delivery.services.endpoints import endpoint_health_update
from clientdesk.delivery.services.push import push_outcomes_record

log = logging.getLogger(__name__)
EXCERPT_CHARS = 2000


# --- Queueing --------------------------------------------------------------------------------


class Outgoing(NamedTuple):
    """A payload to carry: on which channel, about which client (none for the ledger's), for
    which subject (what its deliveries are listed under, e.g. a message's id); not before
    `next_attempt_at` (None: at once), e.g. a broadcast's notification held by quiet hours;
    a push names the device it goes to."""

    channel: Channel
    client: Client | None
    subject_id: uuid.UUID
    payload: dict[str, Any]
    next_attempt_at: datetime | None = None
    push_subscription_id: uuid.UUID | None = None


def delivery_create(
    *, channel: Channel, client: Client | None, subject_id: uuid.UUID, payload: dict[str, Any]
) -> Delivery:
    """Queue one delivery. Call inside the transaction that writes its subject: the worker
    only sees it after commit, and nothing leaves the process before."""
    return deliveries_create(outgoing=[Outgoing(channel, client, subject_id, payload)])[0]


def deliveries_create(*, outgoing: Sequence[Outgoing]) -> list[Delivery]:
    """Queue many deliveries with one insert and one wake-up, in the order given; as
    `delivery_create`, inside the transaction that writes their subjects."""
    if not outgoing:
        return []
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            channel=item.channel,
            client=item.client,
            subject_id=item.subject_id,
            payload=item.payload,
            push_subscription_id=item.push_subscription_id,
            next_attempt_at=item.next_attempt_at or now,
            created_at=now,
        )
        for item in outgoing
    )
    notify.work_due()
    return deliveries


def delivery_changed(delivery: Delivery) -> None:
    """Tell staff streams a delivery moved on. Call inside the transaction that moved it, as its
    last write (see `live_event_record`)."""
    live_events_record(_changed_events([delivery]))


def _changed_events(
    deliveries: Iterable[Delivery],
) -> list[tuple[uuid.UUID, str, dict[str, Any]]]:
    """The `delivery.updated` events for `deliveries`. Deliveries about no client (the
    ledger's) have no audience."""
    return [
        (
            delivery.client_id,
            "delivery.updated",
            {
                "delivery_id": str(delivery.id),
                "subject_id": str(delivery.subject_id),
                "channel": delivery.channel,
                "status": delivery.status,
                "attempt_count": delivery.attempt_count,
                "next_attempt_at": iso_utc(delivery.next_attempt_at),
                "delivered_at": iso_utc(delivery.delivered_at),
                "last_error": delivery.last_error,
            },
        )
        for delivery in deliveries
        if delivery.client_id is not None
    ]


def delivery_retry_now(*, delivery_id: uuid.UUID, actor: User | None) -> Delivery:
    """Start the schedule again for a failed delivery, or bring a queued one forward; in the
    audit ledger with the user who asked."""
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status == DeliveryStatus.DELIVERED:
            raise ValidationFailed("This delivery has already arrived.")
        if delivery.status == DeliveryStatus.SENDING:
            raise ValidationFailed("This delivery is being attempted right now.")
        endpoint = endpoint_get()
        if delivery.channel == Channel.WEBHOOK and (endpoint is None or not endpoint.enabled):
            reason = endpoint.disabled_reason if endpoint else ""
            raise ValidationFailed(
                "Webhook delivery is paused: the outgoing endpoint is disabled. "
                f"{reason} Ask an administrator to enable it under Integrations; queued "
                "messages then go out.".replace("  ", " ")
            )
        if delivery.status == DeliveryStatus.FAILED:
            delivery.schedule_step = 0
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["status", "schedule_step", "next_attempt_at", "updated_at"])
        audit_append(
            actor=actor,
            action="delivery.retried",
            object_type="delivery",
            object_id=delivery.pk,
            created_at=timezone.now(),
            data={"channel": delivery.channel, "subject_id": str(delivery.subject_id)},
        )
        notify.work_due()
        delivery_changed(delivery)
    return delivery


# --- The lease: claimed, attempted, recorded -------------------------------------------------


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


def deliveries_next_due_at(*, endpoint: OutgoingEndpoint | None) -> datetime | None:
    """When the next queued delivery a worker may take is due; None when none waits.
    `endpoint`: as the worker's last claim read it."""
    return (
        Delivery.objects.filter(_workable(endpoint))
        .filter(status=DeliveryStatus.PENDING, next_attempt_at__isnull=False)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )


@dataclass(frozen=True)
class Claimed:
    """Leased deliveries, and the endpoint as it was when they were claimed: every attempt of
    the batch posts to that URL with those secrets, and no attempt reads the database."""

    deliveries: list[Delivery]
    endpoint: OutgoingEndpoint | None


def deliveries_claim(*, worker: str, limit: int) -> Claimed:
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


def deliveries_release(*, worker: str, delivery_ids: Sequence[uuid.UUID]) -> int:
    """End `worker`'s leases on these deliveries now, as a stopping worker does for attempts it
    will not record: the next claim by any worker takes them at once, noting that the worker
    stopped during the attempt, instead of after the lease. Returns how many were released."""
    with transaction.atomic():
        released = Delivery.objects.filter(
            pk__in=delivery_ids, leased_by=worker, status=DeliveryStatus.SENDING
        ).update(lease_until=timezone.now())
        if released:
            notify.work_due()  # the other workers wake for them
    return released


@dataclass(frozen=True)
class Attempted:
    """One finished attempt, not yet recorded: the delivery as claimed, when the attempt
    began, and what it produced."""

    delivery: Delivery
    started_at: datetime
    outcome: Outcome


def delivery_attempt(*, delivery: Delivery, endpoint: OutgoingEndpoint | None) -> Attempted:
    """Carry one claimed delivery over its channel. No database access: safe in any thread.
    `endpoint`: as its claim read it."""
    started_at = timezone.now()
    try:
        outcome = channels.perform(delivery, endpoint)
    except Exception as error:  # a bug in a channel must not kill the worker or lose the row
        log.exception("delivery %s: attempt crashed", delivery.pk)
        outcome = Outcome(ok=False, duration_ms=0, error=f"internal error: {error}"[:1000])
    return Attempted(delivery, started_at, outcome)


_MOVED_FIELDS = [
    "status",
    "delivered_at",
    "next_attempt_at",
    "schedule_step",
    "lease_until",
    "leased_by",
    "last_status_code",
    "last_error",
    "updated_at",
]


def attempts_record(*, worker: str, attempted: Sequence[Attempted]) -> list[Delivery]:
    """Record a batch of finished attempts in one transaction and move each delivery on:
    delivered, scheduled again, or failed. The statements are per batch, not per attempt: the
    deliveries locked in one `SELECT … FOR UPDATE`, the attempts, moves, timeline entries and
    live events each written in one statement. Returns the deliveries as now stored, in the
    order given."""
    if not attempted:
        return []
    now = timezone.now()
    with transaction.atomic():
        # Locked in id order, so two recorders never wait on each other in a cycle. The
        # client comes in the same statement (its timeline entry); only deliveries are locked.
        current = {
            d.pk: d
            for d in Delivery.objects.select_for_update(of=("self",))
            .select_related("client")
            .filter(pk__in=[a.delivery.pk for a in attempted])
            .order_by("pk")
        }
        DeliveryAttempt.objects.bulk_create(
            [
                DeliveryAttempt(
                    delivery_id=a.delivery.pk,
                    number=a.delivery.attempt_count,
                    started_at=a.started_at,
                    duration_ms=a.outcome.duration_ms,
                    status_code=a.outcome.status_code,
                    response_excerpt=a.outcome.excerpt[:EXCERPT_CHARS],
                    error=a.outcome.error[:1000],
                    worker=worker,
                )
                for a in attempted
            ],
            # A worker that took over a lost lease wrote this number's row as "stopped during
            # the attempt"; the attempt did finish, so its outcome replaces that guess.
            update_conflicts=True,
            unique_fields=["delivery", "number"],
            update_fields=[
                "started_at",
                "duration_ms",
                "status_code",
                "response_excerpt",
                "error",
                "worker",
            ],
        )
        moved: list[Delivery] = []
        timeline: list[ActivityEvent] = []
        webhook_outcomes: list[Outcome] = []
        pushed: list[Delivery] = []
        push_gone: list[tuple[Delivery, int | None]] = []
        for a in attempted:
            delivery = current[a.delivery.pk]
            if delivery.leased_by != worker or delivery.status != DeliveryStatus.SENDING:
                # Our lease ran out and another worker took over: it decides the outcome.
                continue
            _move_on(delivery, a.outcome, now)
            moved.append(delivery)
            if delivery.channel == Channel.WEBHOOK:
                webhook_outcomes.append(a.outcome)
            elif delivery.channel == Channel.PUSH and a.outcome.ok:
                pushed.append(delivery)
            elif delivery.channel == Channel.PUSH and a.outcome.gone:
                push_gone.append((delivery, a.outcome.status_code))
            if delivery.client is not None and delivery.status != DeliveryStatus.PENDING:
                timeline.append(_outcome_activity(delivery, now))
        _save_moved(moved)
        if pushed or push_gone:
            timeline += push_outcomes_record(delivered=pushed, gone=push_gone, now=now)
        if timeline:
            ActivityEvent.objects.bulk_create(timeline)
        if webhook_outcomes:
            endpoint_health_update(outcomes=webhook_outcomes, now=now)
        if any(d.status == DeliveryStatus.PENDING for d in moved):
            notify.work_due()  # sleeping workers recompute when to wake
        live_events_record(_changed_events(moved))  # last: see live_event_record
    attempts_observed(worker=worker, moved=moved, now=now)  # a log line each, the counter
    return [current[a.delivery.pk] for a in attempted]


def _save_moved(moved: Sequence[Delivery]) -> None:
    """One UPDATE per distinct outcome, not per delivery: a batch that all arrived is one
    statement (cheaper to build and run than `bulk_update`'s CASE per row and field)."""
    groups: dict[tuple[Any, ...], list[uuid.UUID]] = {}
    for delivery in moved:
        values = tuple(getattr(delivery, name) for name in _MOVED_FIELDS)
        groups.setdefault(values, []).append(delivery.pk)
    for values, ids in groups.items():
        Delivery.objects.filter(pk__in=ids).update(**dict(zip(_MOVED_FIELDS, values, strict=True)))


def _move_on(delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    """The lease ends with the attempt's outcome."""
    delivery.lease_until = None
    delivery.leased_by = ""
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:1000]
    delivery.updated_at = now  # QuerySet.update() leaves auto_now fields alone
    if outcome.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        return
    delay = (
        None
        if outcome.gone
        else policy.next_delay(
            step=delivery.schedule_step,
            retry_after=outcome.retry_after,
            slow_down=outcome.slow_down,
        )
    )
    if delay is None:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
    else:
        delivery.status = DeliveryStatus.PENDING
        delivery.schedule_step += 1
        delivery.next_attempt_at = now + delay


def _outcome_activity(delivery: Delivery, now: datetime) -> ActivityEvent:
    assert delivery.client is not None
    return activity_build(
        client=delivery.client,
        type=(
            ActivityType.MESSAGE_DELIVERED
            if delivery.status == DeliveryStatus.DELIVERED
            else ActivityType.DELIVERY_FAILED
        ),
        actor=None,
        created_at=now,
        subject_id=delivery.subject_id,
        data={
            "channel": delivery.channel,
            "attempts": delivery.attempt_count,
            "error": delivery.last_error,
        },
    )
