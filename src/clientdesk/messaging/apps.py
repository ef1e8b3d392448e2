"""Messaging: messages, variables, the send service, the slide-out panel and the staff API."""

from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "clientdesk.messaging"
    label = "messaging"
