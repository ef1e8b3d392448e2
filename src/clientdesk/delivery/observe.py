"""What a worker tells of each attempt it recorded: one log line (never the payload, the URL
or the response) and the `clientdesk_deliveries_total` counter."""

import logging
from collections.abc import Sequence
from datetime import datetime

from clientdesk.core.metrics import deliveries_observe
from clientdesk.delivery.models import Delivery, DeliveryStatus

log = logging.getLogger("clientdesk.delivery")

_OUTCOMES = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retrying",
    DeliveryStatus.FAILED: "failed",
}


def attempts_observed(*, worker: str, moved: Sequence[Delivery], now: datetime) -> None:
    """Call once the attempts' records are committed; `moved`: the deliveries as recorded."""
    outcomes = []
    for delivery in moved:
        outcome = _OUTCOMES.get(DeliveryStatus(delivery.status), "unknown")
        outcomes.append((str(delivery.channel), outcome))
        retry_in = (
            round((delivery.next_attempt_at - now).total_seconds(), 1)
            if outcome == "retrying" and delivery.next_attempt_at is not None
            else None
        )
        log.log(
            logging.WARNING if outcome == "failed" else logging.INFO,
            "delivery %s %s",
            delivery.pk,
            outcome,
            extra={
                "delivery_id": str(delivery.pk),
                "channel": delivery.channel,
                "event_type": delivery.event_type,
                "outcome": outcome,
                "attempt": delivery.attempt_count,
                "status_code": delivery.last_status_code,
                "retry_in_s": retry_in,
                "worker": worker,
            },
        )
    deliveries_observe(outcomes)
