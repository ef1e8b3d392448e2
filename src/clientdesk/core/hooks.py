"""Transaction hooks: where an app later in the import order joins a transaction that an earlier
app runs, without the earlier one importing it.

The earlier app declares a hook for one kind of value (`TransactionHook[AuditCheckpoint]`) and
calls it inside its transaction; each later app registers its function once, by name, from
`AppConfig.ready()`. What a hook's functions write commits or rolls back with the caller's
change. Registering a name again replaces it (`ready()` may run twice in tests)."""

from collections.abc import Callable
from typing import Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

T = TypeVar("T")


class TransactionHook(Generic[T]):
    def __init__(self, name: str, *, required: bool = False) -> None:
        """`required`: a call with nothing registered is a configuration error (the ledger must
        not silently record nothing)."""
        self.name = name
        self.required = required
        self._runs: dict[str, Callable[[T], object]] = {}

    def register(self, *, name: str, run: Callable[[T], object]) -> None:
        self._runs[name] = run

    def __call__(self, value: T) -> None:
        """Run every registered function with `value`, in the order registered."""
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError(f"{self.name} must run inside the transaction of its change")
        if self.required and not self._runs:
            raise ImproperlyConfigured(f"Nothing is registered for {self.name}.")
        for run in self._runs.values():
            run(value)
