"""Writes for audit: timeline events and ledger records, always inside the caller's transaction."""

import hashlib
import json
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, ActivityType, ActorType, AuditRecord
from clientdesk.clients.models import Client

GENESIS_HASH = "0" * 64
# Any constant works; it names the one advisory lock that serialises ledger appends.
_LEDGER_LOCK_KEY = 0x434C4443  # "CLDC"


def activity_record(
    *,
    client: Client,
    type: ActivityType,
    actor: User | None,
    created_at: datetime,
    subject_id: Any = None,
    data: dict[str, Any] | None = None,
) -> ActivityEvent:
    return ActivityEvent.objects.create(
        client=client,
        type=type,
        actor_type=ActorType.STAFF if actor else ActorType.SYSTEM,
        actor_user=actor,
        actor_label=actor.display_name if actor else "Clientdesk",
        subject_id=subject_id,
        data=data or {},
        created_at=created_at,
    )


def record_hash(record: AuditRecord) -> str:
    canonical = json.dumps(
        {
            "sequence": record.sequence,
            "created_at": record.created_at.isoformat(),
            "actor_type": record.actor_type,
            "actor_id": record.actor_id,
            "actor_label": record.actor_label,
            "action": record.action,
            "object_type": record.object_type,
            "object_id": record.object_id,
            "data": record.data,
            "prev_hash": record.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def audit_append(
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: Any,
    created_at: datetime,
    data: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append to the ledger. Must run inside the transaction that makes the audited change."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_append must run inside the transaction it audits")
    if connection.vendor == "postgresql":
        # One writer at a time per chain; SQLite's IMMEDIATE transactions already serialise.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LEDGER_LOCK_KEY])
    last = AuditRecord.objects.order_by("-sequence").only("sequence", "hash").first()
    record = AuditRecord(
        sequence=(last.sequence + 1) if last else 1,
        created_at=created_at,
        actor_type=ActorType.STAFF if actor else ActorType.SYSTEM,
        actor_id=str(actor.pk) if actor else "",
        actor_label=actor.display_name if actor else "Clientdesk",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        data=json.loads(json.dumps(data or {}, default=str)),
        prev_hash=last.hash if last else GENESIS_HASH,
    )
    record.hash = record_hash(record)
    record.save(force_insert=True)
    return record
