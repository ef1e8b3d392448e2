"""The ledger's last signed checkpoint as /metrics reports it, read when scraped."""

import math
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from clientdesk.audit.models import AuditCheckpoint


def checkpoint_metrics(now: datetime) -> Iterable[Metric]:
    """The newest checkpoint by its tree size (a unique index: one row read)."""
    created = (
        AuditCheckpoint.objects.order_by("-tree_size").values_list("created_at", flat=True).first()
    )
    yield GaugeMetricFamily(
        "clientdesk_audit_last_checkpoint_age_seconds",
        "Seconds since the ledger's last signed checkpoint (+Inf: none yet).",
        value=math.inf if created is None else max(0.0, (now - created).total_seconds()),
    )
