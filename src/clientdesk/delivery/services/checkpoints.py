"""The `audit.checkpoint` webhook: each new signed checkpoint of the ledger, queued for the
outgoing endpoint (registered with `audit` in `delivery/apps.py`)."""

import uuid

from clientdesk.audit.models import AuditCheckpoint
from clientdesk.core.time import iso_utc
from clientdesk.delivery.models import Channel, Delivery
from clientdesk.delivery.selectors import endpoint_get
from clientdesk.delivery.services.queue import delivery_create

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
