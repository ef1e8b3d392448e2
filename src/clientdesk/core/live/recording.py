"""Writing the live-event log: each event in the transaction of its change, in id order, and
announced at commit; old events pruned.

On PostgreSQL `live_events_record` first takes a transaction-scoped advisory lock, so rows become
visible in `id` order and a reader that has seen id N never later finds a smaller id committing
behind it. SQLite has one writer at a time, which gives the same order."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clientdesk.core.live.hub import announce
from clientdesk.core.live.log import live_event_head
from clientdesk.core.models import LiveEvent

# Any constant works; it only has to differ from the other advisory locks (the ledger's).
# Callers record their live events as the last writes of their transaction: a transaction that
# holds this lock waits for nothing else (no row lock, no write, no foreign-key check at commit),
# so it is held briefly and cannot deadlock. tests/delivery/test_live_lock_order.py checks every
# flow statement by statement.
_ORDER_LOCK = 0x4C495645  # "LIVE"
_CHECK_THEN_LOCK = f"SET CONSTRAINTS ALL IMMEDIATE; SELECT pg_advisory_xact_lock({_ORDER_LOCK})"


def live_event_record(*, client_id: uuid.UUID | str, type: str, data: dict[str, Any]) -> LiveEvent:
    """Record an event about `client_id` in the current transaction; streams get it after
    commit. `data` must be JSON and safe for every audience that may receive `type`."""
    return live_events_record([(client_id, type, data)])[0]


def live_events_record(
    events: Sequence[tuple[uuid.UUID | str, str, dict[str, Any]]],
) -> list[LiveEvent]:
    """Record several `(client_id, type, data)` events in the current transaction: one ordering
    lock, one insert and one announcement (readers fetch every row past their cursor)."""
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        raise RuntimeError("live events must be recorded inside transaction.atomic()")
    if not events:
        return []
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            # Django's foreign keys are checked at COMMIT (DEFERRABLE INITIALLY DEFERRED); a
            # check may wait for another transaction's row lock. Run them now, before the lock.
            cursor.execute(_CHECK_THEN_LOCK)
    now = timezone.now()
    rows = LiveEvent.objects.bulk_create(
        LiveEvent(client_id=client_id, type=type, data=data, created_at=now)
        for client_id, type, data in events
    )
    announce(max(row.id for row in rows), conn.vendor)
    return rows


def live_events_prune_job(now: datetime) -> None:
    """The worker's job (core.jobs)."""
    live_events_prune()


def live_events_prune() -> int:
    """Delete events older than the retention, keeping the newest so the head stays a valid
    cursor. A stream resuming from a deleted id gets `stream.reset`."""
    cutoff = timezone.now() - timedelta(hours=settings.LIVE_EVENT_RETENTION_HOURS)
    newest = live_event_head()
    deleted, _ = LiveEvent.objects.filter(created_at__lt=cutoff, id__lt=newest).delete()
    return deleted
