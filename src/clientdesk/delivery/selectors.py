"""Reads for delivery."""

from django.db.models import QuerySet

from clientdesk.delivery.models import Delivery


def recent_deliveries(*, limit: int = 20) -> QuerySet[Delivery]:
    return (
        Delivery.objects.select_related("client")
        .prefetch_related("attempts")
        .order_by("-created_at")[:limit]
    )
