"""How the OpenAPI document describes portal-session authentication."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class PortalTokenScheme(OpenApiAuthenticationExtension):
    target_class = "clientdesk.portal.authentication.PortalTokenAuthentication"
    name = "portalSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A client's portal token (`cdp_...`) from POST /api/v1/portal/sessions.",
        }
