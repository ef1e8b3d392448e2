"""The client's activity timeline and the hash-chained, Merkle-tree audit ledger."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class AuditConfig(AppConfig):
    name = "clientdesk.audit"
    label = "audit"

    def ready(self) -> None:
        from clientdesk.audit.append_only import register_sqlite_function
        from clientdesk.audit.jobs import ledger_job
        from clientdesk.audit.metrics import checkpoint_metrics
        from clientdesk.audit.services import activity_consent_changed, audit_append_recorded
        from clientdesk.clients.hooks import consent_changed
        from clientdesk.core.jobs import job_register
        from clientdesk.core.ledger import ledger_recorded
        from clientdesk.core.metrics import metrics_source_register

        ledger_recorded.register(name="audit.ledger", run=audit_append_recorded)
        consent_changed.register(name="audit.timeline", run=activity_consent_changed)
        job_register(name="audit.ledger", run=ledger_job, every_seconds=1.0)
        metrics_source_register(name="audit.checkpoint", collect=checkpoint_metrics)

        connection_created.connect(register_sqlite_function, dispatch_uid="audit-sqlite-switch")
