"""Transaction hooks (core/hooks.py): called inside the caller's transaction only, every registered
function in order, a name registered again replaces its function, a required hook with nothing
registered refuses, and what the functions write commits or rolls back with the caller."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from clientdesk.audit.models import AuditEntry
from clientdesk.core.hooks import TransactionHook
from clientdesk.core.ledger import ledger_record, ledger_recorded

pytestmark = pytest.mark.django_db


def test_a_hook_runs_every_function_in_the_order_registered():
    seen: list[str] = []
    hook: TransactionHook[int] = TransactionHook("test.numbers")
    hook.register(name="first", run=lambda n: seen.append(f"first {n}"))
    hook.register(name="second", run=lambda n: seen.append(f"second {n}"))
    hook.register(name="first", run=lambda n: seen.append(f"first again {n}"))
    with transaction.atomic():
        hook(7)
    assert seen == ["first again 7", "second 7"]


@pytest.mark.django_db(transaction=True)  # no test transaction around it
def test_a_hook_refuses_to_run_outside_a_transaction():
    seen: list[int] = []
    hook: TransactionHook[int] = TransactionHook("test.outside")
    hook.register(name="one", run=seen.append)
    with pytest.raises(RuntimeError, match=r"test\.outside must run inside the transaction"):
        hook(1)
    assert seen == []


def test_a_required_hook_with_nothing_registered_refuses():
    with transaction.atomic(), pytest.raises(ImproperlyConfigured, match=r"test\.required"):
        TransactionHook[int]("test.required", required=True)(1)
    with transaction.atomic():
        TransactionHook[int]("test.optional")(1)  # nothing to run, nothing wrong


def test_what_the_ledger_hook_writes_rolls_back_with_the_change(agent):
    """The audit app registered itself on the ledger hook when it loaded: a record made from
    below audit lands in the ledger, and is gone when the caller's transaction fails."""
    assert ledger_recorded.required

    def record(action: str) -> None:
        ledger_record(
            actor=agent, action=action, object_type="client", object_id="c1", data={"n": 1}
        )

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        record("client.changed")
        _ = 1 / 0
    assert not AuditEntry.objects.exists()
    with transaction.atomic():
        record("client.changed")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_id, entry.data) == ("client.changed", str(agent.pk), {"n": 1})
