"""The audit ledger for the apps below `audit` in the import order (accounts, clients): they
record through this port, which the audit app connects to `audit_append` when it loads."""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

_appender: Callable[..., Any] | None = None


def ledger_connect(appender: Callable[..., Any]) -> None:
    global _appender
    _appender = appender


def ledger_record(
    *, actor: Any, action: str, object_type: str, object_id: Any, data: dict[str, Any]
) -> None:
    """Add a ledger record; must run inside the transaction that makes the change."""
    if _appender is None:
        raise ImproperlyConfigured("The audit app is not installed: nothing records the ledger.")
    _appender(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        created_at=timezone.now(),
        data=data,
    )
