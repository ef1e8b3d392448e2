"""A client's devices for Web Push: subscribing, unsubscribing, the service worker's receipts,
and what the worker's outcomes mean for them (404/410: gone; delivered: one more push awaiting
its receipt). The push itself is a delivery like any other (`channels.send_push`)."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent, ActivityType
from clientdesk.audit.services import activity_build
from clientdesk.clients.models import Client
from clientdesk.core.errors import ValidationFailed
from clientdesk.delivery import webpush
from clientdesk.delivery.models import Channel, Delivery, DeliveryStatus, PushSubscription
from clientdesk.delivery.ssrf import UnsafeUrl, validate_webhook_url

# A client's devices; subscribing one more forgets the least recently subscribed.
MAX_DEVICES = 20
MAX_USER_AGENT = 300
_RECEIPT_SALT = "clientdesk.push.receipt"


class InvalidSubscription(ValidationFailed):
    type_slug = "invalid-push-subscription"


def _expiration(value: Any) -> datetime | None:
    """`expirationTime`: null or milliseconds since the epoch, as `PushSubscription.toJSON()`
    gives it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSubscription("expirationTime must be null or a number of milliseconds.")
    if not 0 <= value <= 253_402_300_799_000:  # up to 9999-12-31
        raise InvalidSubscription("expirationTime is out of range.")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def push_endpoint_check(endpoint: str) -> None:
    """The endpoint goes through the webhook URL guard (no loopback, private or metadata
    address unless CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS is on), and must be https, as every
    push service is (RFC 8030), unless private addresses are allowed (a test double)."""
    allow_private = settings.ALLOW_PRIVATE_WEBHOOK_URLS
    if not endpoint.isascii():
        # A browser serializes it so (punycode host, the rest percent-encoded); kept ASCII, its
        # 2,000 characters fit the unique index on it (PostgreSQL's holds at most 2,704 bytes).
        raise InvalidSubscription(
            "endpoint must be an ASCII URL, as the browser's PushSubscription.endpoint is."
        )
    if not allow_private and not endpoint.lower().startswith("https://"):
        raise InvalidSubscription("endpoint must be an https:// URL of a push service.")
    try:
        validate_webhook_url(endpoint, allow_private=allow_private)
    except UnsafeUrl as refused:
        raise InvalidSubscription(f"endpoint: {refused.detail}") from refused


@dataclass(frozen=True)
class Subscribed:
    subscription: PushSubscription
    created: bool


def push_subscribe(
    *,
    client: Client,
    endpoint: str,
    p256dh: str,
    auth: str,
    expiration_time: Any = None,
    user_agent: str = "",
) -> Subscribed:
    """Keep one device of `client`. The same endpoint again updates it (`created` False); an
    endpoint another client held moves to this one (the browser it names is now signed in as
    this client, and only that browser knows its endpoint)."""
    try:
        webpush.device_keys(p256dh, auth)
    except ValueError as error:
        raise InvalidSubscription(f"{error}.") from error
    expires = _expiration(expiration_time)
    push_endpoint_check(endpoint)
    return _subscribe(
        client=client,
        endpoint=endpoint,
        p256dh=p256dh,
        auth=auth,
        expires=expires,
        user_agent=user_agent,
    )


def _subscribe(
    *,
    client: Client,
    endpoint: str,
    p256dh: str,
    auth: str,
    expires: datetime | None,
    user_agent: str,
) -> Subscribed:
    now = timezone.now()
    with transaction.atomic():
        # The endpoint's row is the only lock (a client's row is the send's, and holding both
        # in two orders deadlocks). It is made first if missing, so racing subscribes of one
        # endpoint meet on that row instead of failing on the unique index.
        fresh = PushSubscription(client=client, endpoint=endpoint, created_at=now, updated_at=now)
        PushSubscription.objects.bulk_create([fresh], ignore_conflicts=True)
        current = PushSubscription.objects.select_for_update().get(endpoint=endpoint)
        created = current.pk == fresh.pk or current.client_id != client.pk
        if created and current.pk != fresh.pk:
            current.created_at = now  # a new device of this client, whoever held it before
            current.last_receipt_at = None
            current.confirmed_through = None
            current.unconfirmed_pushes = 0
        current.client = client
        current.p256dh = p256dh
        current.auth = auth
        current.expiration_time = expires
        current.user_agent = user_agent[:MAX_USER_AGENT]
        current.updated_at = now
        current.save()
        stale = list(
            PushSubscription.objects.filter(client=client)
            .order_by("-created_at", "-id")
            .values_list("pk", flat=True)[MAX_DEVICES:]
        )
        if stale:
            PushSubscription.objects.filter(pk__in=stale).delete()
    return Subscribed(current, created)


def push_unsubscribe(*, client: Client, endpoint: str) -> bool:
    """Forget one of `client`'s devices; True when there was one. Another client's device with
    that endpoint is left alone."""
    deleted, _ = PushSubscription.objects.filter(client=client, endpoint=endpoint).delete()
    return deleted > 0


# --- receipts ------------------------------------------------------------------------------


def push_receipt_token(*, subscription_id: uuid.UUID, message_id: uuid.UUID) -> str:
    """The credential a push carries for its own receipt: the service worker has no session (a
    push arrives long after one ended), so the push itself says which device showed which
    message, signed so that nobody else can confirm it."""
    return signing.Signer(salt=_RECEIPT_SALT).sign(f"{subscription_id.hex}{message_id.hex}")


def push_receipt_record(*, receipt: str, message_id: uuid.UUID) -> bool:
    """The device showed the push of `message_id`: it is alive. True when a subscription took
    it, False when the subscription is gone (a late receipt changes nothing). Raises
    ValidationFailed for a receipt that is not ours or names another message."""
    try:
        value = signing.Signer(salt=_RECEIPT_SALT).unsign(receipt)
        subscription_id, named = uuid.UUID(value[:32]), uuid.UUID(value[32:])
    except (signing.BadSignature, ValueError) as error:
        raise ValidationFailed("This is not a valid push receipt.") from error
    if named != message_id:
        raise ValidationFailed("This receipt is for another message.")
    now = timezone.now()
    with transaction.atomic():
        subscription = (
            PushSubscription.objects.select_for_update().filter(pk=subscription_id).first()
        )
        if subscription is None:
            return False
        pushed_at = (
            Delivery.objects.filter(
                push_subscription=subscription, subject_id=message_id, channel=Channel.PUSH
            )
            .values_list("created_at", flat=True)
            .first()
        )
        if pushed_at is not None and (
            subscription.confirmed_through is None or pushed_at > subscription.confirmed_through
        ):
            subscription.confirmed_through = pushed_at
        subscription.last_receipt_at = now
        subscription.unconfirmed_pushes = _unconfirmed(subscription)
        subscription.save(
            update_fields=["confirmed_through", "last_receipt_at", "unconfirmed_pushes"]
        )
    return True


def _unconfirmed(subscription: PushSubscription) -> int:
    """Pushes delivered to the device since the newest one it confirmed."""
    delivered = Delivery.objects.filter(
        push_subscription=subscription, channel=Channel.PUSH, status=DeliveryStatus.DELIVERED
    )
    if subscription.confirmed_through is not None:
        delivered = delivered.filter(created_at__gt=subscription.confirmed_through)
    return delivered.count()


def probably_dead(subscription: PushSubscription) -> bool:
    """Pushes keep arriving at the push service but the device confirms none: a push service
    may accept pushes for a device long gone (Apple answers 201 for them, WebKit bug 249766)."""
    return subscription.unconfirmed_pushes >= settings.PUSH_DEAD_AFTER


def push_devices(*, client: Client) -> list[PushSubscription]:
    return list(PushSubscription.objects.filter(client=client).order_by("created_at", "id"))


def push_device_representation(subscription: PushSubscription) -> dict[str, Any]:
    from clientdesk.core.time import iso_utc

    return {
        "id": str(subscription.id),
        "endpoint": subscription.endpoint,
        "created_at": iso_utc(subscription.created_at),
        "expiration_time": iso_utc(subscription.expiration_time),
        "user_agent": subscription.user_agent,
        "last_receipt_at": iso_utc(subscription.last_receipt_at),
        "unconfirmed_pushes": subscription.unconfirmed_pushes,
        "probably_dead": probably_dead(subscription),
    }


# --- what the worker's outcomes mean for the devices ----------------------------------------


def push_outcomes_record(
    *, delivered: Sequence[Delivery], gone: Sequence[tuple[Delivery, int | None]], now: datetime
) -> list[ActivityEvent]:
    """In the transaction that records the attempts: a push delivered counts toward "probably
    dead" until the device confirms it; a push service's 404 or 410 ends the subscription
    (returns the timeline entries `push.subscription_expired` to write with the others)."""
    for delivery in delivered:
        if delivery.push_subscription_id is None:
            continue
        _count_delivered(delivery.push_subscription_id, delivery.created_at)
    events: list[ActivityEvent] = []
    seen: set[uuid.UUID] = set()
    for delivery, status_code in gone:
        subscription_id = delivery.push_subscription_id
        if subscription_id is None or subscription_id in seen or delivery.client is None:
            continue
        seen.add(subscription_id)
        deleted, _ = PushSubscription.objects.filter(pk=subscription_id).delete()
        if deleted:
            events.append(
                activity_build(
                    client=delivery.client,
                    type=ActivityType.PUSH_SUBSCRIPTION_EXPIRED,
                    actor=None,
                    created_at=now,
                    # No subject: the timeline reads a subject as a message.
                    data={
                        "subscription_id": str(subscription_id),
                        "status_code": status_code,
                        "endpoint_origin": webpush.endpoint_origin(
                            str(delivery.payload.get("endpoint", ""))
                        ),
                    },
                )
            )
    return events


def _count_delivered(subscription_id: uuid.UUID, pushed_at: datetime) -> None:
    from django.db.models import F

    # A receipt may come before its push is recorded: one for this push or a later one has
    # moved `confirmed_through` past it, and it is not counted.
    PushSubscription.objects.filter(pk=subscription_id).filter(
        Q(confirmed_through__isnull=True) | Q(confirmed_through__lt=pushed_at)
    ).update(unconfirmed_pushes=F("unconfirmed_pushes") + 1)
