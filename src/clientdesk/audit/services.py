"""Writes for audit: timeline events, ledger entries (inside the caller's transaction), the
sequencer that turns entries into chained, tree-hashed records, and signed checkpoints."""

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit import merkle, signing
from clientdesk.audit.hooks import checkpoint_created
from clientdesk.audit.models import (
    ActivityEvent,
    ActivityType,
    ActorType,
    AuditCheckpoint,
    AuditEntry,
    AuditRecord,
    AuditTreeNode,
)
from clientdesk.clients.hooks import ConsentChange
from clientdesk.clients.models import Client
from clientdesk.core.ledger import LedgerRecord

GENESIS_HASH = "0" * 64
# Any constant works; it names the one advisory lock that serialises the sequencer.
_LEDGER_LOCK_KEY = 0x434C4443  # "CLDC"


def activity_record(
    *,
    client: Client,
    type: ActivityType,
    actor: User | None,
    created_at: datetime,
    subject_id: Any = None,
    data: dict[str, Any] | None = None,
    by_client: bool = False,
) -> ActivityEvent:
    """`by_client`: the client did it (read, replied), not staff or the system."""
    event = activity_build(
        client=client,
        type=type,
        actor=actor,
        created_at=created_at,
        subject_id=subject_id,
        data=data,
        by_client=by_client,
    )
    event.save(force_insert=True)
    return event


def activity_build(
    *,
    client: Client,
    type: ActivityType,
    actor: User | None,
    created_at: datetime,
    subject_id: Any = None,
    data: dict[str, Any] | None = None,
    by_client: bool = False,
) -> ActivityEvent:
    """An unsaved timeline event, for callers that write several in one `bulk_create`."""
    if by_client:
        actor_type, label = ActorType.CLIENT, client.full_name
    elif actor:
        actor_type, label = ActorType.STAFF, actor.display_name
    else:
        actor_type, label = ActorType.SYSTEM, "Clientdesk"
    return ActivityEvent(
        client=client,
        type=type,
        actor_type=actor_type,
        actor_user=actor,
        actor_label=label,
        subject_id=subject_id,
        data=data or {},
        created_at=created_at,
    )


def activity_consent_changed(change: ConsentChange) -> None:
    """A change of the client's consent to outreach on their timeline (the clients hook)."""
    activity_record(
        client=change.client,
        type=ActivityType.CONSENT_CHANGED,
        actor=change.actor,
        created_at=change.at,
        data={"outreach_opt_out": change.opt_out, "via": change.via},
        by_client=change.by_client,
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
    client_actor: Client | None = None,
) -> AuditEntry:
    """Add a record to the ledger. Must run inside the transaction that makes the audited change.

    The record is written without a position; `audit_sequence` (the worker, moments later)
    gives it its sequence and hash. So concurrent sends never queue on the ledger's end."""
    entry = _entry(actor, client_actor, action, object_type, object_id, created_at, data)
    return audit_entries_append([entry])[0]


def audit_build(
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: Any,
    created_at: datetime,
    data: dict[str, Any] | None = None,
    client_actor: Client | None = None,
) -> AuditEntry:
    """An unsaved ledger entry, for writers that append many in one statement
    (`audit_entries_append`)."""
    return _entry(actor, client_actor, action, object_type, object_id, created_at, data)


def _entry(
    actor: User | None,
    client_actor: Client | None,
    action: str,
    object_type: str,
    object_id: Any,
    created_at: datetime,
    data: dict[str, Any] | None,
) -> AuditEntry:
    if client_actor is not None:  # the client acted (read, replied) through the portal
        actor_type, actor_id, label = (
            ActorType.CLIENT,
            str(client_actor.pk),
            client_actor.full_name,
        )
    elif actor:
        actor_type, actor_id, label = ActorType.STAFF, str(actor.pk), actor.display_name
    else:
        actor_type, actor_id, label = ActorType.SYSTEM, "", "Clientdesk"
    return AuditEntry(
        created_at=created_at,
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=label,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        data=json.loads(json.dumps(data or {}, default=str)),
    )


def audit_entries_append(entries: Sequence[AuditEntry]) -> list[AuditEntry]:
    """Add built entries to the ledger in one statement, in the order given (the sequencer keeps
    it). Must run inside the transaction that makes the audited change."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit entries must be appended inside the transaction they audit")
    return AuditEntry.objects.bulk_create(entries)


def audit_append_recorded(record: LedgerRecord) -> None:
    """A record from an app below audit in the import order (`core/ledger.py`)."""
    audit_append(
        actor=record.actor,
        action=record.action,
        object_type=record.object_type,
        object_id=record.object_id,
        created_at=record.created_at,
        data=record.data,
        client_actor=record.client_actor,
    )


def _lock_ledger() -> None:
    """One sequencer or checkpoint writer at a time; SQLite's IMMEDIATE transactions already
    serialise writers."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LEDGER_LOCK_KEY])


def audit_sequence(*, batch_size: int = 2000) -> int:
    """Give waiting entries their positions, in batches; returns how many were sequenced.

    Each batch is one transaction that inserts the records and their tree nodes and deletes the
    entries, so a crash leaves every entry either sequenced once or still waiting."""
    total = 0
    # Looked at outside a transaction: on SQLite every transaction takes the write lock, and an
    # idle worker asks every second.
    if not AuditEntry.objects.exists():
        return total
    while True:
        with transaction.atomic():
            _lock_ledger()
            entries = list(AuditEntry.objects.order_by("id")[:batch_size])
            if not entries:
                return total
            last = AuditRecord.objects.order_by("-sequence").only("sequence", "hash").first()
            size = last.sequence if last else 0
            tree = ledger_compact_range(size)
            prev_hash = last.hash if last else GENESIS_HASH
            records: list[AuditRecord] = []
            nodes: list[AuditTreeNode] = []
            for offset, entry in enumerate(entries, start=1):
                record = AuditRecord(
                    sequence=size + offset,
                    entry_id=entry.entry_id,
                    created_at=entry.created_at,
                    actor_type=entry.actor_type,
                    actor_id=entry.actor_id,
                    actor_label=entry.actor_label,
                    action=entry.action,
                    object_type=entry.object_type,
                    object_id=entry.object_id,
                    data=entry.data,
                    prev_hash=prev_hash,
                )
                record.hash = prev_hash = record_hash(record)
                records.append(record)
                for (level, index), value in tree.append(bytes.fromhex(record.hash)):
                    nodes.append(AuditTreeNode(level=level, index=index, hash=value))
            AuditRecord.objects.bulk_create(records)
            AuditTreeNode.objects.bulk_create(nodes)
            AuditEntry.objects.filter(id__in=[e.id for e in entries]).delete()
            total += len(entries)


def ledger_compact_range(size: int) -> merkle.CompactRange:
    """The stored right edge of the tree of the first `size` records."""
    wanted = merkle.CompactRange.peak_nodes(size)
    nodes = tree_nodes(set(wanted))
    missing = [n for n in wanted if n not in nodes]
    if missing:
        raise LedgerBroken(f"the ledger's tree store lacks node {missing[0]}")
    return merkle.CompactRange(size, [nodes[n] for n in wanted])


def tree_nodes(wanted: set[merkle.Node]) -> dict[merkle.Node, bytes]:
    if not wanted:
        return {}
    query = Q()
    for level in {level for level, _ in wanted}:
        query |= Q(level=level, index__in=[i for lv, i in wanted if lv == level])
    return {
        (node.level, node.index): bytes(node.hash)
        for node in AuditTreeNode.objects.filter(query).only("level", "index", "hash")
    }


class LedgerBroken(RuntimeError):
    """The ledger no longer agrees with itself or with a checkpoint; nothing was signed."""


def audit_checkpoint_create(*, now: datetime | None = None) -> AuditCheckpoint:
    """Sign a checkpoint of the whole sequenced ledger, or return the latest when the ledger
    has not grown. A new checkpoint must extend the previous one (checked with a consistency
    proof from the stored tree), so two checkpoints never disagree."""
    audit_sequence()
    with transaction.atomic():
        _lock_ledger()
        last = AuditRecord.objects.order_by("-sequence").only("sequence", "hash").first()
        size = last.sequence if last else 0
        latest = AuditCheckpoint.objects.order_by("-tree_size").first()
        if latest is not None and latest.tree_size == size:
            return latest
        if latest is not None and latest.tree_size > size:
            raise LedgerBroken(
                f"the ledger has {size} records but checkpoint {latest.tree_size} was signed: "
                "records were removed"
            )
        root = merkle.fetch_nodes(lambda read: merkle.tree_root(read, size), tree_nodes)
        if latest is not None:
            proof = merkle.fetch_nodes(
                lambda read: merkle.consistency_proof(read, latest.tree_size, size), tree_nodes
            )
            if not merkle.verify_consistency(
                first=latest.tree_size,
                second=size,
                first_root=bytes(latest.root_hash),
                second_root=root,
                proof=proof,
            ):
                raise LedgerBroken(
                    f"the ledger no longer extends checkpoint {latest.tree_size}: "
                    "records before it were changed"
                )
        verifier = signing.current_verifier()
        checkpoint = AuditCheckpoint.objects.create(
            tree_size=size,
            root_hash=root,
            note=signing.note_sign(signing.checkpoint_body(tree_size=size, root_hash=root)),
            key_name=verifier.name,
            vkey=verifier.vkey,
            created_at=now or timezone.now(),
        )
        checkpoint_created(checkpoint)
        return checkpoint
