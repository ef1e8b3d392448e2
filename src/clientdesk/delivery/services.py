"""Writes for delivery: endpoint settings, creating deliveries, recording attempts."""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, ActivityType, AuditCheckpoint
from clientdesk.audit.services import activity_build, audit_append
from clientdesk.clients.models import Client
from clientdesk.core import notify
from clientdesk.core.errors import PermissionDenied, ValidationFailed
from clientdesk.core.live import live_events_record
from clientdesk.core.time import iso_utc
from clientdesk.delivery import channels, policy
from clientdesk.delivery.models import (
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingEndpoint,
    new_signing_secret,
)
from clientdesk.delivery.outcomes import Outcome
from clientdesk.delivery.permissions import DeliveryPermission
from clientdesk.delivery.selectors import endpoint_get, endpoint_get_for_update
from clientdesk.delivery.ssrf import validate_webhook_url

SECRET_OVERLAP = timedelta(hours=24)
EXCERPT_CHARS = 2000


def check_can_manage_integration(user: User) -> None:
    if not user.has_perm(DeliveryPermission.MANAGE_INTEGRATION):
        raise PermissionDenied("You need the 'Manage integration settings' permission.")


# --- Endpoint settings ---------------------------------------------------------------------


def endpoint_configure(
    *, user: User, url: str, enabled: bool, email_enabled: bool | None = None
) -> tuple[OutgoingEndpoint, bool]:
    """Set the outgoing endpoint; returns it and whether it was created (its secret is new)."""
    check_can_manage_integration(user)
    url = url.strip()
    validate_webhook_url(url, allow_private=settings.ALLOW_PRIVATE_WEBHOOK_URLS)
    with transaction.atomic():
        endpoint = endpoint_get_for_update()
        created = endpoint is None
        if endpoint is None:
            endpoint = OutgoingEndpoint(pk=1)
        was_enabled = endpoint.enabled and not created
        endpoint.url = url
        endpoint.enabled = enabled
        if email_enabled is not None:
            endpoint.email_enabled = email_enabled
        if enabled and not was_enabled:
            endpoint.disabled_reason = ""
            endpoint.disabled_at = None
            endpoint.failing_since = None
        endpoint.updated_by = user
        endpoint.save()
        audit_append(
            actor=user,
            action="endpoint.created" if created else "endpoint.updated",
            object_type="outgoing_endpoint",
            object_id=endpoint.pk,
            created_at=timezone.now(),
            data={"url": url, "enabled": enabled, "email_enabled": endpoint.email_enabled},
        )
        if enabled:
            notify.work_due()  # deliveries paused while it was disabled may go now
    return endpoint, created


def endpoint_rotate_secret(*, user: User) -> OutgoingEndpoint:
    """A new signing secret; the previous one stays valid (both sign) for 24 hours."""
    check_can_manage_integration(user)
    with transaction.atomic():
        endpoint = endpoint_get_for_update()
        if endpoint is None:
            raise ValidationFailed("Configure the outgoing endpoint before rotating its secret.")
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + SECRET_OVERLAP
        endpoint.secret = new_signing_secret()
        endpoint.updated_by = user
        endpoint.save()
        audit_append(
            actor=user,
            action="endpoint.secret_rotated",
            object_type="outgoing_endpoint",
            object_id=endpoint.pk,
            created_at=timezone.now(),
            data={"previous_valid_until": endpoint.previous_secret_expires_at.isoformat()},
        )
    return endpoint


def active_channels(*, client: Client) -> list[Channel]:
    """The channels a message to `client` is queued on. The webhook is one whenever an endpoint
    is configured, enabled or not: while it is disabled its deliveries wait (the worker leaves
    them alone) and go out, oldest first, once it is enabled again."""
    endpoint = endpoint_get()
    queued_on = []
    if endpoint is not None:
        queued_on.append(Channel.WEBHOOK)
    if endpoint is not None and endpoint.email_enabled and client.email:
        queued_on.append(Channel.EMAIL)
    return queued_on


def webhook_paused_reason() -> str | None:
    """Why webhook deliveries wait right now, or None when they go out (or none are made)."""
    endpoint = endpoint_get()
    if endpoint is None or endpoint.enabled:
        return None
    return endpoint.disabled_reason or "An administrator disabled it."


# --- Deliveries ------------------------------------------------------------------------------


def delivery_create(
    *, channel: Channel, client: Client | None, subject_id: uuid.UUID, payload: dict[str, Any]
) -> Delivery:
    """Queue one delivery. Call inside the transaction that writes its subject: the worker
    only sees it after commit, and nothing leaves the process before."""
    now = timezone.now()
    delivery = Delivery.objects.create(
        channel=channel,
        client=client,
        subject_id=subject_id,
        payload=payload,
        next_attempt_at=now,
        created_at=now,
    )
    notify.work_due()
    return delivery


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


def delivery_retry_now(*, delivery_id: Any, actor: User | None) -> Delivery:
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


@dataclass(frozen=True)
class Attempted:
    """One finished attempt, not yet recorded: the delivery as claimed, when the attempt
    began, and what it produced."""

    delivery: Delivery
    started_at: datetime
    outcome: Outcome


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
        for a in attempted:
            delivery = current[a.delivery.pk]
            if delivery.leased_by != worker or delivery.status != DeliveryStatus.SENDING:
                # Our lease ran out and another worker took over: it decides the outcome.
                continue
            _move_on(delivery, a.outcome, now)
            moved.append(delivery)
            if delivery.channel == Channel.WEBHOOK:
                webhook_outcomes.append(a.outcome)
            if delivery.client is not None and delivery.status != DeliveryStatus.PENDING:
                timeline.append(_outcome_activity(delivery, now))
        _save_moved(moved)
        if timeline:
            ActivityEvent.objects.bulk_create(timeline)
        if webhook_outcomes:
            _endpoint_note(webhook_outcomes, now=now)
        if any(d.status == DeliveryStatus.PENDING for d in moved):
            notify.work_due()  # sleeping workers recompute when to wake
        live_events_record(_changed_events(moved))  # last: see live_event_record
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


def _endpoint_note(outcomes: Sequence[Outcome], *, now: datetime) -> None:
    """Track the endpoint's health from a batch of webhook outcomes, in the order the attempts
    finished: 410 Gone disables it at once, a day of failures too; a success stops the clock,
    and a failure after a success starts it again."""
    last = outcomes[-1]
    gone = next((o for o in outcomes if o.gone), None)
    if gone is None and last.ok:
        if all(o.endpoint_failing is False for o in outcomes):
            return  # no clock was running when the attempts began: nothing to clear
        # The common case takes no row lock: only clear a failing clock that is running.
        OutgoingEndpoint.objects.filter(pk=1, failing_since__isnull=False).update(
            failing_since=None
        )
        return
    outcome = gone or last
    endpoint = endpoint_get_for_update()
    if endpoint is None:
        return
    if endpoint.failing_since is None or any(o.ok for o in outcomes):
        endpoint.failing_since = now
    limit = timedelta(hours=settings.ENDPOINT_DISABLE_AFTER_HOURS)
    reason = ""
    if outcome.gone:
        reason = "The endpoint answered 410 Gone: it asked not to receive more messages."
    elif now - endpoint.failing_since >= limit:
        reason = (
            f"Every attempt has failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
            f"(last: {outcome.error or outcome.status_code})."
        )
    if reason and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        endpoint.disabled_at = now
        audit_append(
            actor=None,
            action="endpoint.disabled",
            object_type="outgoing_endpoint",
            object_id=endpoint.pk,
            created_at=now,
            data={"reason": reason},
        )
    endpoint.save()


# Its webhook's subject id is derived from the tree size: one per checkpoint.
_CHECKPOINT_NAMESPACE = uuid.UUID("5c1e7d2a-3b4f-4f0e-9a61-0c6d8e2f7a10")


def checkpoint_webhook_create(checkpoint: AuditCheckpoint) -> Delivery | None:
    """Queue a new signed ledger checkpoint as an `audit.checkpoint` webhook (docs/WEBHOOKS.md), so
    the integrated system keeps its own copy to verify the ledger against later. Runs in the
    transaction that stores the checkpoint; waits like any webhook while the endpoint is
    disabled."""
    if endpoint_get() is None:
        return None
    return delivery_create(
        channel=Channel.WEBHOOK,
        client=None,
        subject_id=uuid.uuid5(_CHECKPOINT_NAMESPACE, str(checkpoint.tree_size)),
        payload={
            "type": "audit.checkpoint",
            "timestamp": iso_utc(checkpoint.created_at),
            "data": {
                "checkpoint": checkpoint.note,
                "tree_size": checkpoint.tree_size,
                "key_name": checkpoint.key_name,
            },
        },
    )


def endpoint_send_test(*, user: User) -> Outcome:
    """Send a signed `test.ping` event now and report what the receiver said. Not queued, not
    retried: it is for the administrator watching the settings page."""

    check_can_manage_integration(user)
    endpoint = endpoint_get()
    if endpoint is None:
        raise ValidationFailed("Configure the outgoing endpoint before sending a test event.")
    now = timezone.now()
    probe = Delivery(
        channel=Channel.WEBHOOK,
        payload={
            "type": "test.ping",
            "timestamp": iso_utc(now),
            "data": {"sent_by": user.display_name},
        },
        created_at=now,
    )
    outcome = channels.send_webhook(probe, endpoint)
    with transaction.atomic():
        audit_append(
            actor=user,
            action="endpoint.tested",
            object_type="outgoing_endpoint",
            object_id=endpoint.pk,
            created_at=now,
            data={"status_code": outcome.status_code, "error": outcome.error},
        )
    return outcome
