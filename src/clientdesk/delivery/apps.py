"""Outbound transport that knows nothing of messages: deliveries, attempts, channels (webhook,
email), the worker, the retry policy, the outgoing endpoint settings and the SSRF guard."""

from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "clientdesk.delivery"
    label = "delivery"
