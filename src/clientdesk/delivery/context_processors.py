"""The banners administrators see on every page: while the outgoing endpoint is disabled, and
while deliveries wait with no worker running."""

from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from clientdesk.core.heartbeat import worker_absent, worker_last_seen
from clientdesk.delivery.permissions import DeliveryPermission
from clientdesk.delivery.selectors import deliveries_due, endpoint_banner


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


def worker_alert(request: HttpRequest) -> dict[str, Any]:
    """Administrators' banner while deliveries are due and no worker was seen for 2 minutes."""
    user = getattr(request, "user", None)
    if (
        user is None
        or not user.is_authenticated
        or not user.has_perm(DeliveryPermission.MANAGE_INTEGRATION)
    ):
        return {}
    now = timezone.now()
    if not worker_absent(now) or not deliveries_due(now=now):
        return {}
    last = worker_last_seen()
    seen = (
        f"no delivery worker has been seen for {int((now - last).total_seconds() // 60)} minutes."
        if last is not None
        else "no delivery worker has ever run."
    )
    return {"worker_alert": seen}
