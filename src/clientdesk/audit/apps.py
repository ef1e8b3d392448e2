"""The client's activity timeline and the hash-chained audit ledger."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "clientdesk.audit"
    label = "audit"
