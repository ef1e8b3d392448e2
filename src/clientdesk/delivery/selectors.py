"""Reads for delivery."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from clientdesk.core.errors import NotFound
from clientdesk.delivery.models import Delivery


def delivery_get(*, delivery_id: Any) -> Delivery:
    try:
        return Delivery.objects.select_related("client").get(pk=delivery_id)
    except (Delivery.DoesNotExist, ValidationError, ValueError) as error:
        raise NotFound("No such delivery.") from error


def recent_deliveries(*, limit: int = 20) -> QuerySet[Delivery]:
    return (
        Delivery.objects.select_related("client")
        .prefetch_related("attempts")
        .order_by("-created_at")[:limit]
    )
