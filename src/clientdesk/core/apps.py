"""Shared pieces only: errors, problem+json, request ids, permission helpers."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "clientdesk.core"
    label = "core"

    def ready(self) -> None:
        from clientdesk.core.jobs import job_register
        from clientdesk.core.live.recording import live_events_prune_job

        job_register(name="core.live_events_prune", run=live_events_prune_job, every_seconds=3600)
