"""The delivery queue as /metrics reports it, read when scraped (core/metrics.py)."""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Min
from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from clientdesk.delivery.models import Channel, Delivery, DeliveryStatus


def queue_metrics(now: datetime) -> Iterable[Metric]:
    """One query over the pending rows (the `(status, next_attempt_at)` index): how many wait
    per channel, and how long past its due time the most overdue one has waited (0: none due)."""
    rows = (
        Delivery.objects.filter(status=DeliveryStatus.PENDING)
        .values("channel")
        .annotate(depth=Count("id"), first_due=Min("next_attempt_at"))
        .order_by()
    )
    by_channel = {row["channel"]: row for row in rows}
    depth = GaugeMetricFamily(
        "clientdesk_delivery_queue_depth",
        "Deliveries waiting to be attempted (due now or scheduled for a retry), by channel.",
        labels=["channel"],
    )
    oldest = GaugeMetricFamily(
        "clientdesk_delivery_oldest_pending_seconds",
        "Seconds the most overdue waiting delivery is past its due time (0: none is due), "
        "by channel.",
        labels=["channel"],
    )
    for channel in Channel.values:
        row = by_channel.get(channel, {})
        depth.add_metric([channel], row.get("depth", 0))
        first_due = row.get("first_due")
        overdue = (now - first_due).total_seconds() if first_due is not None else 0.0
        oldest.add_metric([channel], max(0.0, overdue))
    yield depth
    yield oldest
