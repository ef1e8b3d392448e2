"""Broadcasts as /metrics reports them, read when scraped."""

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from clientdesk.outreach.models import BroadcastRecipient, RecipientStatus


def broadcast_metrics(now: datetime) -> Iterable[Metric]:
    """Pending recipients counted on their partial index (pending rows only)."""
    yield GaugeMetricFamily(
        "clientdesk_broadcast_recipients_pending",
        "Broadcast recipients whose message is not yet written (due or scheduled).",
        value=BroadcastRecipient.objects.filter(status=RecipientStatus.PENDING).count(),
    )
