"""The outgoing endpoint, every change to it: settings, secret rotation, health, the test event.

Its reads are in `delivery/selectors.py`; what its state means for a message (the channels
queued, why webhooks wait) is answered here, so the rule lives beside the settings that make
it."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.services import audit_append
from clientdesk.clients.models import Client
from clientdesk.core import notify
from clientdesk.core.errors import PermissionDenied, ValidationFailed
from clientdesk.core.time import iso_utc
from clientdesk.delivery import channels
from clientdesk.delivery.models import Channel, Delivery, OutgoingEndpoint, new_signing_secret
from clientdesk.delivery.outcomes import Outcome
from clientdesk.delivery.permissions import DeliveryPermission
from clientdesk.delivery.selectors import endpoint_get, endpoint_get_for_update
from clientdesk.delivery.ssrf import validate_webhook_url

SECRET_OVERLAP = timedelta(hours=24)


def check_can_manage_integration(user: User) -> None:
    if not user.has_perm(DeliveryPermission.MANAGE_INTEGRATION):
        raise PermissionDenied("You need the 'Manage integration settings' permission.")


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
    return endpoint_channels(endpoint_get(), client=client)


def endpoint_channels(endpoint: OutgoingEndpoint | None, *, client: Client) -> list[Channel]:
    """`active_channels` with the endpoint already read, for callers queueing many messages."""
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


def endpoint_health_update(*, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Track the endpoint's health from a batch of webhook outcomes, in the order the attempts
    finished: 410 Gone disables it at once, a day of failures too; a success stops the clock,
    and a failure after a success starts it again. Runs in the transaction that records them."""
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
