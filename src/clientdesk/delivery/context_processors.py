"""The banner administrators see on every page while the outgoing endpoint is disabled."""

from typing import Any

from django.http import HttpRequest

from clientdesk.delivery.permissions import DeliveryPermission
from clientdesk.delivery.selectors import endpoint_banner


def integration_alert(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if (
        user is None
        or not user.is_authenticated
        or not user.has_perm(DeliveryPermission.MANAGE_INTEGRATION)
    ):
        return {}
    endpoint = endpoint_banner()
    if endpoint is None or endpoint.enabled or not endpoint.disabled_reason:
        return {}
    return {"integration_alert": endpoint.disabled_reason}
