"""The Integrations page: the outgoing-message endpoint, its secret, a test event, recent
deliveries."""

import uuid

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from clientdesk.accounts.requests import StaffRequest
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import ApplicationError
from clientdesk.core.gate import requires
from clientdesk.core.ui import render_error_page
from clientdesk.delivery.permissions import DeliveryPermission
from clientdesk.delivery.selectors import endpoint_get, recent_deliveries
from clientdesk.delivery.services.endpoints import (
    endpoint_configure,
    endpoint_rotate_secret,
    endpoint_send_test,
)
from clientdesk.delivery.services.push import probably_dead, push_devices

_SHOW_SECRET = "clientdesk.show_secret"  # noqa: S105 - a session key, not a secret


@requires(DeliveryPermission.MANAGE_INTEGRATION)
@require_GET
def integrations(request: StaffRequest) -> HttpResponse:
    endpoint = endpoint_get()
    context = {
        "endpoint": endpoint,
        "form": {
            "url": endpoint.url if endpoint else "",
            "enabled": endpoint.enabled if endpoint else True,
            "email_enabled": endpoint.email_enabled if endpoint else False,
        },
        # The full secret is shown once, right after it was made.
        "secret": request.session.pop(_SHOW_SECRET, None),
        "deliveries": recent_deliveries(limit=20),
    }
    return render(request, "delivery/integrations.html", context)


@requires(DeliveryPermission.MANAGE_INTEGRATION)
@require_POST
def integrations_save(request: StaffRequest) -> HttpResponse:
    form = {
        "url": request.POST.get("url", ""),
        "enabled": request.POST.get("enabled") == "on",
        "email_enabled": request.POST.get("email_enabled") == "on",
    }
    try:
        endpoint, created = endpoint_configure(
            user=request.user,
            url=str(form["url"]),
            enabled=bool(form["enabled"]),
            email_enabled=bool(form["email_enabled"]),
        )
    except ApplicationError as error:
        context = {
            "endpoint": endpoint_get(),
            "form": form,
            "error": error,
            "deliveries": recent_deliveries(limit=20),
        }
        return render(request, "delivery/integrations.html", context, status=error.status)
    if created:
        request.session[_SHOW_SECRET] = endpoint.secret
    messages.success(request, gettext("Integration settings saved."))
    return redirect("delivery:integrations")


@requires(DeliveryPermission.MANAGE_INTEGRATION)
@require_POST
def integrations_rotate(request: StaffRequest) -> HttpResponse:
    try:
        endpoint = endpoint_rotate_secret(user=request.user)
    except ApplicationError as error:
        return render_error_page(request, error)
    request.session[_SHOW_SECRET] = endpoint.secret
    messages.success(
        request, gettext("New signing secret made; the previous one stays valid for 24 hours.")
    )
    return redirect("delivery:integrations")


@requires(DeliveryPermission.MANAGE_INTEGRATION)
@require_POST
def integrations_test(request: StaffRequest) -> HttpResponse:
    try:
        outcome = endpoint_send_test(user=request.user)
    except ApplicationError as error:
        return render_error_page(request, error)
    return render(request, "delivery/test_result.html", {"outcome": outcome})


@requires(ClientsPermission.VIEW_CLIENT)
@require_GET
def client_push_devices(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    """The client's devices for Web Push, in the details drawer: when each was turned on, its
    last receipt, and whether it is probably dead (docs/PORTAL.md, "Web Push")."""
    try:
        client = client_get(client_id=client_id)
    except ApplicationError as error:
        return render_error_page(request, error)
    devices = [(d, probably_dead(d)) for d in push_devices(client=client)]
    template = "delivery/push_devices.html"
    if request.htmx:
        template += "#push-devices"
    return render(
        request,
        template,
        {"client": client, "devices": devices, "dead_after": settings.PUSH_DEAD_AFTER},
    )
