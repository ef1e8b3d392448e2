"""Where apps after audit join the transaction that signs a checkpoint of the ledger (the
outgoing `audit.checkpoint` webhook): they register from `AppConfig.ready()`."""

from clientdesk.audit.models import AuditCheckpoint
from clientdesk.core.hooks import TransactionHook

checkpoint_created: TransactionHook[AuditCheckpoint] = TransactionHook("audit.checkpoint_created")
