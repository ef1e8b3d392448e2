"""Outreach: one personalised message to many clients (broadcasts), the outreach settings
(quiet hours, default zone, frequency cap) and the client's consent to outreach."""

from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "clientdesk.outreach"
    label = "outreach"
