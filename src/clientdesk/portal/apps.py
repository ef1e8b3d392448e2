"""The client's side: portal sessions, the portal API, the client event stream, the cabinet."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "clientdesk.portal"
    label = "portal"
