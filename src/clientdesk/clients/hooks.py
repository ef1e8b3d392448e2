"""Where apps after clients join the transaction that changes a client's consent to outreach:
the audit app writes the change on the client's timeline in the same commit, without clients
importing audit. Audit registers from `AppConfig.ready()`; `client_consent_change`
(`clients/consent.py`) calls `consent_changed` inside its transaction."""

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
