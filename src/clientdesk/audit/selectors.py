"""Reads for audit: a client's timeline and the ledger check."""

from dataclasses import dataclass

from django.db.models import QuerySet

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, AuditRecord
from clientdesk.audit.services import GENESIS_HASH, record_hash
from clientdesk.clients.models import Client
from clientdesk.core.errors import PermissionDenied

# The timeline shows messages, so reading it takes the permission to read messages.
VIEW_ACTIVITY_PERMISSION = "messaging.view_message"


def check_can_view_activity(user: User) -> None:
    if not user.has_perm(VIEW_ACTIVITY_PERMISSION):
        raise PermissionDenied(
            "You need the 'Can view message' permission to read a client's activity."
        )


def client_activity(*, client: Client) -> QuerySet[ActivityEvent]:
    return ActivityEvent.objects.filter(client=client).order_by("-created_at", "-id")


@dataclass(frozen=True)
class LedgerCheck:
    checked: int
    first_bad_sequence: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_bad_sequence is None


def audit_verify() -> LedgerCheck:
    """Walk the chain in order; report the first record whose hash or link does not hold."""
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for record in AuditRecord.objects.order_by("sequence").iterator(chunk_size=2000):
        if record.sequence != expected_sequence:
            return LedgerCheck(
                checked,
                record.sequence,
                f"expected sequence {expected_sequence}: a record is missing",
            )
        if record.prev_hash != expected_prev:
            return LedgerCheck(
                checked, record.sequence, "prev_hash does not match the record before"
            )
        if record_hash(record) != record.hash:
            return LedgerCheck(checked, record.sequence, "content does not match its hash")
        expected_prev = record.hash
        expected_sequence += 1
        checked += 1
    return LedgerCheck(checked)
