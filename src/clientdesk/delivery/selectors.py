"""Reads for delivery."""

import uuid
from datetime import datetime

from django.db.models import QuerySet

from clientdesk.core.errors import NotFound
from clientdesk.delivery.models import Delivery, DeliveryStatus, OutgoingEndpoint


# The one outgoing endpoint (docs/WEBHOOKS.md): every read of it goes through these.
def endpoint_get() -> OutgoingEndpoint | None:
    return OutgoingEndpoint.objects.filter(pk=1).first()


def endpoint_get_for_update() -> OutgoingEndpoint | None:
    """Inside a transaction: the endpoint row, locked until it ends."""
    return OutgoingEndpoint.objects.select_for_update().filter(pk=1).first()


def endpoint_banner() -> OutgoingEndpoint | None:
    """What the disabled-endpoint banner needs, and nothing else."""
    return OutgoingEndpoint.objects.filter(pk=1).only("enabled", "disabled_reason").first()


def delivery_get(*, delivery_id: uuid.UUID) -> Delivery:
    try:
        return Delivery.objects.select_related("client").get(pk=delivery_id)
    except Delivery.DoesNotExist as error:
        raise NotFound("No such delivery.") from error


def recent_deliveries(*, limit: int = 20) -> QuerySet[Delivery]:
    return (
        Delivery.objects.select_related("client")
        .prefetch_related("attempts")
        .order_by("-created_at")[:limit]
    )


def deliveries_due(*, now: datetime) -> bool:
    """Whether any delivery waits for a worker now (the `(status, next_attempt_at)` index)."""
    return Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).exists()
