"""The "Send a message" slide-out panel."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import ApplicationError
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.ui import render_error_page
from clientdesk.messaging.rendering import CATALOGUE
from clientdesk.messaging.selectors import client_messages
from clientdesk.messaging.services import check_can_send, message_send, new_idempotency_key

SENT_LIST_SIZE = 20


def _panel_context(request: HttpRequest, client: Client, **extra: object) -> dict[str, object]:
    return {
        "client": client,
        "sent": list(client_messages(user=request.user, client=client)[:SENT_LIST_SIZE]),  # type: ignore[arg-type]
        "variables": CATALOGUE.values(),
        "idempotency_key": new_idempotency_key(),
        "body": "",
        **extra,
    }


@login_required
@require_GET
def send_panel(request: HttpRequest, client_id: str) -> HttpResponse:
    try:
        check_can_send(request.user)  # type: ignore[arg-type]
        client = client_get(client_id=client_id)
        context = _panel_context(request, client)
    except ApplicationError as error:
        return render_error_page(request, error)
    template = "messaging/send_panel.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#panel"
    return render(request, template, context)


@login_required
@require_POST
def send_message(request: HttpRequest, client_id: str) -> HttpResponse:
    body = request.POST.get("body", "")
    key = request.POST.get("idempotency_key", "")
    try:
        result = message_send(
            sender=request.user,  # type: ignore[arg-type]
            client_id=client_id,
            body=body,
            idempotency_key=key,
            meta=RequestMeta.from_request(request),
        )
        client = client_get(client_id=client_id)
    except ApplicationError as error:
        if request.htmx:  # type: ignore[attr-defined]
            response = render(
                request, "messaging/send_failed.html", {"error": error}, status=error.status
            )
            response["HX-Reswap"] = "none"
            return response
        try:
            client = client_get(client_id=client_id)
            context = _panel_context(request, client, body=body, idempotency_key=key, error=error)
        except ApplicationError:
            return render_error_page(request, error)
        return render(request, "messaging/send_panel.html", context, status=error.status)

    notice = f"Message sent to {client.full_name}."
    if not request.htmx:  # type: ignore[attr-defined]
        messages.success(request, notice)
        return redirect("messaging:panel", client_id=client.id)
    context = _panel_context(request, client, notice=notice, sent_id=str(result.message_id))
    return render(request, "messaging/send_done.html", context)
