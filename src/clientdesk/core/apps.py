"""Shared pieces only: errors, problem+json, request ids, permission helpers."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "clientdesk.core"
    label = "core"
