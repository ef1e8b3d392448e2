"""Outbound transport that knows nothing of messages: deliveries, attempts, channels (webhook,
email), the worker, the retry policy, the outgoing endpoint settings and the SSRF guard."""

from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "clientdesk.delivery"
    label = "delivery"

    def ready(self) -> None:
        from clientdesk.audit.services import checkpoint_created_hook_register
        from clientdesk.delivery.services.checkpoints import checkpoint_webhook_create

        checkpoint_created_hook_register(name="delivery.webhook", hook=checkpoint_webhook_create)
