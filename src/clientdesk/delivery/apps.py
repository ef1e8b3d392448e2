"""Outbound transport that knows nothing of messages: deliveries, attempts, channels (webhook,
email), the worker, the retry policy, the outgoing endpoint settings and the SSRF guard."""

from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "clientdesk.delivery"
    label = "delivery"

    def ready(self) -> None:
        from clientdesk.audit.hooks import checkpoint_created
        from clientdesk.core.metrics import metrics_source_register
        from clientdesk.delivery.metrics import queue_metrics
        from clientdesk.delivery.services.checkpoints import checkpoint_webhook_create

        checkpoint_created.register(name="delivery.webhook", run=checkpoint_webhook_create)
        metrics_source_register(name="delivery.queue", collect=queue_metrics)
