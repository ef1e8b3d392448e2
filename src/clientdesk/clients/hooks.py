"""Where apps after clients join the transaction that changes a client: the audit app writes a
consent change on the client's timeline in the same commit, and the portal ends a deactivated
client's sessions and sign-in links, without clients importing either. They register from
`AppConfig.ready()`; `client_consent_change` (`clients/consent.py`) calls `consent_changed` and
`client_update` (`clients/services.py`) calls `client_deactivated` inside its transaction."""

from dataclasses import dataclass
from datetime import datetime

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.hooks import TransactionHook


@dataclass(frozen=True)
class ConsentChange:
    client: Client
    opt_out: bool
    actor: User | None  # the staff user who acted; None when the client did or Clientdesk did
    by_client: bool
    via: str
    at: datetime


consent_changed: TransactionHook[ConsentChange] = TransactionHook("clients.consent_changed")

# The client was just deactivated (called last in the transaction that deactivates it).
client_deactivated: TransactionHook[Client] = TransactionHook("clients.deactivated")
