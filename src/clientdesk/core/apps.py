"""Shared pieces only: errors, problem+json, request ids, permission helpers."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "clientdesk.core"
    label = "core"

    def ready(self) -> None:
        from clientdesk.core.heartbeat import (
            HEARTBEAT_SECONDS,
            worker_heartbeat_job,
            worker_metrics,
        )
        from clientdesk.core.jobs import job_register
        from clientdesk.core.live.recording import live_events_prune_job
        from clientdesk.core.metrics import metrics_source_register

        job_register(name="core.live_events_prune", run=live_events_prune_job, every_seconds=3600)
        job_register(
            name="core.worker_heartbeat", run=worker_heartbeat_job, every_seconds=HEARTBEAT_SECONDS
        )
        metrics_source_register(name="core.worker", collect=worker_metrics)
