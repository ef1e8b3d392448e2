"""The audit ledger as the apps below `audit` in the import order (accounts, clients) write to it:
a transaction hook that the audit app connects to `audit_append` when it loads."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from clientdesk.core.hooks import TransactionHook


@dataclass(frozen=True)
class LedgerRecord:
    actor: Any  # the staff user who acted, None for Clientdesk itself
    action: str
    object_type: str
    object_id: Any
    data: dict[str, Any]
    created_at: datetime
    client_actor: Any = None  # the client who acted (their consent), instead of a staff user


ledger_recorded: TransactionHook[LedgerRecord] = TransactionHook("core.ledger", required=True)


def ledger_record(
    *,
    actor: Any,
    action: str,
    object_type: str,
    object_id: Any,
    data: dict[str, Any],
    client_actor: Any = None,
) -> None:
    """Add a ledger record; must run inside the transaction that makes the change.
    `client_actor`: the client acted themself (`actor` is then None)."""
    ledger_recorded(
        LedgerRecord(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            data=data,
            created_at=timezone.now(),
            client_actor=client_actor,
        )
    )
