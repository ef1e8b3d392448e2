"""The ledger's periodic work, run by the worker: sequence waiting records, and sign a
checkpoint every few minutes when the ledger grew."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from clientdesk.audit.models import AuditCheckpoint
from clientdesk.audit.selectors import latest_checkpoint, ledger_size
from clientdesk.audit.services import LedgerBroken, audit_checkpoint_create, audit_sequence

log = logging.getLogger(__name__)


def ledger_job(now: datetime) -> None:
    """The worker's job (core.jobs): sequence what waits; sign when it is time."""
    ledger_tick(now=now)


def ledger_tick(*, now: datetime | None = None) -> AuditCheckpoint | None:
    """Returns the checkpoint made now, if one was."""
    now = now or timezone.now()
    audit_sequence()
    latest = latest_checkpoint()
    interval = timedelta(seconds=settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS)
    if latest is not None and (now - latest.created_at < interval):
        return None
    if ledger_size() == (latest.tree_size if latest else 0):
        return None
    try:
        return audit_checkpoint_create(now=now)
    except LedgerBroken:
        # Refusing to sign is the alarm: nothing is signed until someone looks.
        log.exception("audit ledger: no checkpoint signed")
        return None
