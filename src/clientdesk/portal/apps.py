"""The client's side: portal sessions, the portal API, the client event stream, the cabinet."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "clientdesk.portal"
    label = "portal"

    def ready(self) -> None:
        from clientdesk.clients.hooks import client_deactivated
        from clientdesk.core.live.leases import lease_store_register
        from clientdesk.portal import schema  # noqa: F401 - registers the OpenAPI auth scheme
        from clientdesk.portal.leases import DatabaseLeaseStore
        from clientdesk.portal.services import portal_client_deactivated

        lease_store_register(DatabaseLeaseStore())
        client_deactivated.register(name="portal", run=portal_client_deactivated)
