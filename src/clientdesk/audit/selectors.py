"""Reads for audit: a client's timeline, the ledger check, checkpoints and proofs."""

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Q, QuerySet

from clientdesk.accounts.models import User
from clientdesk.audit import merkle, signing
from clientdesk.audit.models import (
    ActivityEvent,
    ActivityType,
    AuditCheckpoint,
    AuditEntry,
    AuditRecord,
    AuditTreeNode,
)
from clientdesk.audit.permissions import AuditPermission
from clientdesk.audit.sentences import activity_details, activity_sentence
from clientdesk.audit.services import GENESIS_HASH, record_hash, tree_nodes
from clientdesk.clients.models import Client
from clientdesk.core.errors import PermissionDenied


def check_can_view_activity(user: User) -> None:
    if not user.has_perm(AuditPermission.VIEW_ACTIVITY):
        raise PermissionDenied(
            "You need the 'Can view activity event' permission to read a client's activity."
        )


def client_activity(*, client: Client) -> QuerySet[ActivityEvent]:
    return ActivityEvent.objects.filter(client=client).order_by("-created_at", "-id")


# What happened to a message after it was written; shown inside that message's card.
OUTCOME_TYPES = (
    ActivityType.MESSAGE_DELIVERED,
    ActivityType.DELIVERY_FAILED,
    ActivityType.MESSAGE_READ,
    ActivityType.REPLY_OVERDUE,
    ActivityType.RESPONSE_OVERDUE,
)


@dataclass
class TimelineCard:
    """One message (sent, or the client's reply) with what happened to it since."""

    event: ActivityEvent
    outcomes: list[ActivityEvent]

    @property
    def sentence(self) -> str:
        return activity_sentence(self.event)

    @property
    def details(self) -> str:
        return activity_details(self.event)

    @property
    def deliveries(self) -> list[ActivityEvent]:
        """The last outcome per channel (a failure retried by hand may end delivered)."""
        last: dict[str, ActivityEvent] = {}
        for outcome in self.outcomes:
            if outcome.type in (ActivityType.MESSAGE_DELIVERED, ActivityType.DELIVERY_FAILED):
                last[outcome.data.get("channel", "")] = outcome
        return sorted(last.values(), key=lambda e: e.data.get("channel", ""))

    @property
    def read(self) -> ActivityEvent | None:
        return next((o for o in self.outcomes if o.type == ActivityType.MESSAGE_READ), None)

    @property
    def overdue(self) -> ActivityEvent | None:
        kinds = (ActivityType.REPLY_OVERDUE, ActivityType.RESPONSE_OVERDUE)
        return next((o for o in self.outcomes if o.type in kinds), None)


def client_timeline(*, client: Client) -> QuerySet[ActivityEvent]:
    """The cards' own events (every type but the outcomes), newest first."""
    return (
        client_activity(client=client).exclude(type__in=OUTCOME_TYPES).select_related("actor_user")
    )


def timeline_cards(*, client: Client, events: list[ActivityEvent]) -> list[TimelineCard]:
    """Cards for a page of `client_timeline`, each with its outcomes, in one more query."""
    subjects = [e.subject_id for e in events if e.subject_id is not None]
    outcomes: dict[Any, list[ActivityEvent]] = {}
    rows = ActivityEvent.objects.filter(
        client=client, subject_id__in=subjects, type__in=OUTCOME_TYPES
    ).order_by("created_at", "id")
    for outcome in rows:
        outcomes.setdefault(outcome.subject_id, []).append(outcome)
    return [TimelineCard(event=e, outcomes=outcomes.get(e.subject_id, [])) for e in events]


@dataclass(frozen=True)
class LedgerCheck:
    """The result of `audit_verify`. `checked`: records whose chain held, in order from #1;
    when broken, `first_bad_sequence` is the first position that diverges and every record
    before it (and only those) is vouched for: `intact_before` of them, of which the first
    `signed_before` also match the checkpoint."""

    checked: int
    first_bad_sequence: int | None = None
    problem: str = ""
    waiting: int = 0
    root_hash: bytes = merkle.EMPTY_ROOT
    checkpoint: signing.Checkpoint | None = None
    signed_before: int = 0

    @property
    def intact(self) -> bool:
        return self.first_bad_sequence is None

    @property
    def intact_before(self) -> int:
        return self.checked if self.first_bad_sequence is None else self.first_bad_sequence - 1

    @property
    def intact_before_text(self) -> str:
        """What the records before the first divergence are, in words, never more than true."""
        n = self.intact_before
        if n == 0:
            return "No record before it can be vouched for."
        span = "Record #1 before it is" if n == 1 else f"Records #1 to #{n} before it are"
        if self.checkpoint is None:
            return f"{span} intact as far as the hash chain can tell."
        if self.signed_before >= n:
            return f"{span} intact: they match the signed checkpoint."
        if self.signed_before == 0:
            return f"{span} intact as far as the hash chain can tell (the checkpoint covers none)."
        return (
            f"{span} intact: #1 to #{self.signed_before} match the signed checkpoint, the rest "
            "as far as the hash chain can tell."
        )


# What the chain alone proves, said wherever a check is reported (issue 7: never claim more).
CHAIN_LIMITS = (
    "The hash chain detects an edited, inserted, reordered or deleted record between two "
    "remaining records. It cannot detect removal of the newest records or of all records, or "
    "a ledger rewritten with recomputed hashes: only a checkpoint saved earlier (--checkpoint) "
    "detects those."
)


@dataclass(frozen=True)
class _ChainWalk:
    checked: int  # records #1..checked hold together
    break_at: int | None  # the first position where the chain does not hold
    problem: str
    root: bytes  # of the first `checked` records
    root_at_checkpoint: bytes | None  # of the first tree_size records, if the walk got there


def _walk_chain(signed_size: int | None) -> _ChainWalk:
    """Walk the records in order, rebuilding the Merkle tree, up to the first record whose
    position, link or hash does not hold."""
    expected_prev = GENESIS_HASH
    tree = merkle.CompactRange()
    root_at_checkpoint = merkle.EMPTY_ROOT if signed_size == 0 else None
    for record in AuditRecord.objects.order_by("sequence").iterator(chunk_size=2000):
        expected = tree.size + 1
        problem = ""
        if record.sequence > expected:
            problem = f"record #{expected} is missing (the next record is #{record.sequence})"
        elif record.sequence < expected:
            problem = f"a record numbered #{record.sequence} stands where #{expected} belongs"
        elif record.prev_hash != expected_prev:
            problem = "prev_hash does not match the record before"
        elif record_hash(record) != record.hash:
            problem = "content does not match its hash"
        if problem:
            return _ChainWalk(tree.size, expected, problem, tree.root(), root_at_checkpoint)
        tree.append(bytes.fromhex(record.hash))
        expected_prev = record.hash
        if tree.size == signed_size:
            root_at_checkpoint = tree.root()
    return _ChainWalk(tree.size, None, "", tree.root(), root_at_checkpoint)


def audit_verify(*, checkpoint: signing.Checkpoint | None = None) -> LedgerCheck:
    """Check the chain and rebuild the Merkle tree; with `checkpoint`, also compare with what it
    signed. Reports the first position where the ledger diverges, whichever check finds it."""
    waiting = AuditEntry.objects.count()
    walk = _walk_chain(checkpoint.tree_size if checkpoint else None)

    def result(first_bad: int | None, problem: str, signed_before: int = 0) -> LedgerCheck:
        return LedgerCheck(
            walk.checked, first_bad, problem, waiting, walk.root, checkpoint, signed_before
        )

    if checkpoint is None:
        return result(walk.break_at, walk.problem)
    n = checkpoint.tree_size
    if walk.root_at_checkpoint == checkpoint.root_hash:
        # The first n records are what the checkpoint signed; a break, if any, comes after.
        return result(walk.break_at, walk.problem, signed_before=n)
    # The divergence lies in the first n positions: the walk stopped before n, or the first n
    # records are not the signed ones.
    whole = walk.checked if walk.break_at is None else None
    divergence = _signed_divergence(checkpoint, min(walk.checked, n), records_held=whole)
    if divergence is not None:
        at, problem = divergence
        return result(at, problem, signed_before=at - 1)
    compared = min(walk.checked, n)
    if walk.break_at is not None:
        return result(walk.break_at, walk.problem, signed_before=compared)
    if walk.checked == 0:
        return result(1, f"the ledger is empty, but checkpoint {n} commits to {n} records")
    size = walk.checked
    return result(
        size + 1,
        f"shorter ledger: records #{size + 1} to #{n} are missing "
        f"(checkpoint {n} commits to {n} records, the ledger has {size})",
        signed_before=size,
    )


def _signed_divergence(
    checkpoint: signing.Checkpoint, compare: int, *, records_held: int | None
) -> tuple[int, str] | None:
    """The first of records #1..#compare whose hash is not the leaf `checkpoint` signed, or None
    when they all are. `records_held`: how many records the whole ledger holds, when known.

    The stored tree's leaf hashes are trusted only if they rebuild the checkpoint's signed
    root; then they are the leaves the checkpoint signed."""
    if compare == 0:
        return None
    n = checkpoint.tree_size
    signed_leaves = _stored_leaves(n)
    tree = merkle.CompactRange()
    for value in signed_leaves:
        tree.append_hash(value)
    if tree.size != n or tree.root() != checkpoint.root_hash:
        return (
            1,
            f"the ledger does not match checkpoint {n}, and the stored tree was changed as well, "
            "so the first divergence cannot be named: treat every record as suspect",
        )
    current = AuditRecord.objects.order_by("sequence").values_list("hash", flat=True)[:compare]
    for i, record_hash_hex in enumerate(current.iterator(chunk_size=2000)):
        if merkle.leaf_hash(bytes.fromhex(record_hash_hex)) != signed_leaves[i]:
            # The chain held up to here, so whoever changed this record recomputed the hashes
            # of every record after it: which change it was cannot be told from hashes alone.
            fewer = (
                f"; the ledger has {n - records_held} record(s) fewer than it signed"
                if records_held is not None and records_held < n
                else ""
            )
            return (
                i + 1,
                f"differs from what checkpoint {n} signed although the chain "
                f"holds: the chain was recomputed after an edit, removal, insertion or "
                f"reordering at #{i + 1}{fewer}",
            )
    return None


def _stored_leaves(n: int) -> list[bytes]:
    return [
        bytes(h)
        for h in AuditTreeNode.objects.filter(level=0, index__lt=n)
        .order_by("index")
        .values_list("hash", flat=True)
    ]


def latest_checkpoint() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-tree_size").first()


def ledger_size() -> int:
    last = AuditRecord.objects.order_by("-sequence").only("sequence").first()
    return last.sequence if last else 0


def audit_records(*, after: int = 0, limit: int = 100) -> QuerySet[AuditRecord]:
    return AuditRecord.objects.filter(sequence__gt=after).order_by("sequence")[:limit]


def audit_inclusion_proof(*, sequence: int, tree_size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of record `sequence` (leaf sequence - 1) in the first
    `tree_size` records; ProofError when the ledger cannot prove it."""
    if tree_size > ledger_size():
        raise merkle.ProofError(f"tree_size {tree_size} is larger than the ledger")
    return merkle.fetch_nodes(
        lambda read: merkle.inclusion_proof(read, sequence - 1, tree_size), tree_nodes
    )


def audit_consistency_proof(*, first: int, second: int) -> list[bytes]:
    if second > ledger_size():
        raise merkle.ProofError(f"second {second} is larger than the ledger")
    return merkle.fetch_nodes(
        lambda read: merkle.consistency_proof(read, first, second), tree_nodes
    )


def check_can_view_ledger(user: User) -> None:
    if not user.has_perm(AuditPermission.VIEW_AUDIT_RECORD):
        raise PermissionDenied("You need the 'Can view audit record' permission.")


@dataclass(frozen=True)
class RecordFilters:
    action: str = ""
    actor: str = ""
    object: str = ""
    since: date | None = None
    until: date | None = None  # inclusive: the whole day


def audit_record_search(filters: RecordFilters) -> QuerySet[AuditRecord]:
    """The ledger newest first, narrowed by the Audit page's filters."""
    records = AuditRecord.objects.order_by("-sequence")
    if filters.action:
        records = records.filter(action=filters.action)
    if filters.actor:
        records = records.filter(actor_label__icontains=filters.actor)
    if filters.object:
        text = filters.object
        records = records.filter(Q(object_id__icontains=text) | Q(object_type__icontains=text))
    if filters.since:
        records = records.filter(created_at__date__gte=filters.since)
    if filters.until:
        records = records.filter(created_at__date__lte=filters.until)
    return records


def audit_actions() -> list[str]:
    return list(AuditRecord.objects.values_list("action", flat=True).distinct().order_by("action"))


def audit_waiting_count() -> int:
    return AuditEntry.objects.count()
