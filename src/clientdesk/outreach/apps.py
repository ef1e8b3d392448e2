"""Outreach: one personalised message to many clients (broadcasts), the outreach settings
(quiet hours, default zone, frequency cap) and the client's consent to outreach."""

from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "clientdesk.outreach"
    label = "outreach"

    def ready(self) -> None:
        from clientdesk.core.metrics import metrics_source_register
        from clientdesk.outreach.metrics import broadcast_metrics

        metrics_source_register(name="outreach.broadcasts", collect=broadcast_metrics)
