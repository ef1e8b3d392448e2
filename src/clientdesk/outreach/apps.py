"""Outreach: one personalised message to many clients (broadcasts), the outreach settings
(quiet hours, default zone, frequency cap) and the client's consent to outreach."""

from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "clientdesk.outreach"
    label = "outreach"

    def ready(self) -> None:
        from clientdesk.core.jobs import job_register
        from clientdesk.core.metrics import metrics_source_register
        from clientdesk.outreach.metrics import broadcast_metrics
        from clientdesk.outreach.services import broadcasts_job

        # Once a second at most while idle; at once again while recipients are due.
        job_register(name="outreach.broadcasts", run=broadcasts_job, every_seconds=1.0)
        metrics_source_register(name="outreach.broadcasts", collect=broadcast_metrics)
