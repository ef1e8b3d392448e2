"""The client's side: portal sessions, the portal API, the client event stream, the cabinet."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "clientdesk.portal"
    label = "portal"

    def ready(self) -> None:
        from clientdesk.portal import schema  # noqa: F401 - registers the OpenAPI auth scheme
