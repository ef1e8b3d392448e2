"""The "Send a message" slide-out panel: compose with a template or free text, live preview,
send, and the messages already sent with their live delivery status."""

import uuid

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from clientdesk.accounts.requests import StaffRequest
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import ApplicationError, NotFound
from clientdesk.core.gate import requires
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.ui import render_error_page
from clientdesk.delivery.models import Channel
from clientdesk.delivery.selectors import delivery_get
from clientdesk.delivery.services.endpoints import active_channels, webhook_paused_reason
from clientdesk.delivery.services.queue import delivery_retry_now
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.rendering import CATALOGUE, variable_values
from clientdesk.messaging.selectors import (
    NO_FILES,
    client_messages,
    deliveries_by_message,
    files_by_message,
    templates_readable,
)
from clientdesk.messaging.services.idempotency import new_idempotency_key
from clientdesk.messaging.services.sending import check_can_send, message_send

SENT_LIST_SIZE = 20


def _sent_context(request: StaffRequest, client: Client) -> dict[str, object]:
    sent = list(client_messages(user=request.user, client=client)[:SENT_LIST_SIZE])
    deliveries = deliveries_by_message(m.id for m in sent)
    files = files_by_message(m.id for m in sent)
    rows = [
        (message, deliveries.get(message.id, []), files.get(message.id, NO_FILES))
        for message in sent
    ]
    return {
        "client": client,
        "sent": rows,
        "webhook_paused": webhook_paused_reason(),
    }


def _panel_context(request: StaffRequest, client: Client, **extra: object) -> dict[str, object]:
    return {
        **_sent_context(request, client),
        "variables": CATALOGUE.values(),
        "attributes": sorted(
            name
            for name in variable_values(client=client, sender=request.user)
            if name not in CATALOGUE
        ),
        "templates": list(templates_readable(user=request.user)[:500]),
        "channels": active_channels(client=client),
        "idempotency_key": new_idempotency_key(),
        "body": "",
        "template_id": "",
        "expects_reply": False,
        "document_requests": "",
        **extra,
    }


@requires(MessagingPermission.SEND_PRIVATE_MESSAGE)
@require_GET
def send_panel(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    try:
        check_can_send(request.user)
        client = client_get(client_id=client_id)
        context = _panel_context(request, client)
    except ApplicationError as error:
        return render_error_page(request, error)
    template = "messaging/send_panel.html"
    if request.htmx:
        template += "#panel"
    return render(request, template, context)


@requires(MessagingPermission.VIEW_MESSAGE)
@require_GET
def sent_list(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    """The conversation with delivery status, replies and read receipts; the panel fetches it
    again when the staff event stream says something changed for this client."""
    try:
        context = _sent_context(request, client_get(client_id=client_id))
    except ApplicationError as error:
        return render_error_page(request, error)
    return render(request, "messaging/send_panel.html#sent-list", context)


@requires(MessagingPermission.SEND_PRIVATE_MESSAGE)
@require_POST
def send_message(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    template_id = request.POST.get("template_id") or None
    # A browser posting the form without htmx sends newlines as CRLF; the counter counts LF.
    typed = request.POST.get("body", "").replace("\r\n", "\n")
    # With a template, the box holds its text for this client, maybe edited; empty, the
    # template as it is (its text had not reached the box yet).
    body = typed if typed.strip() or not template_id else None
    key = request.POST.get("idempotency_key", "")
    expects_reply = request.POST.get("expects_reply") == "1"
    asked_text = request.POST.get("document_requests", "")
    # One document a line; none: the template's own (None), as the API's field left out.
    asked = [line.strip() for line in asked_text.splitlines() if line.strip()] or None
    try:
        result = message_send(
            sender=request.user,
            client_id=client_id,
            body=body,
            template_id=template_id,
            # Asking for documents expects a reply: the box need not be ticked too.
            expects_reply=expects_reply or bool(asked),
            attachments=request.POST.getlist("attachments") or None,
            document_requests=asked,
            idempotency_key=key,
            meta=RequestMeta.from_request(request),
        )
        client = client_get(client_id=client_id)
    except ApplicationError as error:
        if request.htmx:
            response = render(
                request, "messaging/send_failed.html", {"error": error}, status=error.status
            )
            response["HX-Reswap"] = "none"
            return response
        try:
            client = client_get(client_id=client_id)
            context = _panel_context(
                request,
                client,
                body=body or "",
                template_id=template_id or "",
                idempotency_key=key,
                expects_reply=expects_reply,
                document_requests=asked_text,
                error=error,
            )
        except ApplicationError:
            return render_error_page(request, error)
        return render(request, "messaging/send_panel.html", context, status=error.status)

    notice = _sent_notice(client)
    if not request.htmx:
        messages.success(request, notice)
        return redirect("messaging:panel", client_id=client.id)
    context = _panel_context(request, client, notice=notice, sent_id=str(result.message_id))
    return render(request, "messaging/send_done.html", context)


def _sent_notice(client: Client) -> str:
    """What the toast says after a send: the message is in the client's cabinet at once; each
    notification channel is named with what it does now."""
    where = gettext("Sent to %(name)s's cabinet") % {"name": client.full_name}
    channels = active_channels(client=client)
    paused = Channel.WEBHOOK in channels and webhook_paused_reason() is not None
    queued = [
        channel.label.lower() for channel in channels if not (paused and channel == Channel.WEBHOOK)
    ]
    if queued:
        where += "; " + gettext("%(channels)s queued") % {"channels": " and ".join(queued)}
    if paused:
        where += "; " + gettext("the webhook waits until the outgoing endpoint is enabled again")
    return where + "."


@requires(MessagingPermission.SEND_PRIVATE_MESSAGE)
@require_POST
def retry_delivery(request: StaffRequest, delivery_id: uuid.UUID) -> HttpResponse:
    try:
        check_can_send(request.user)
        delivery = delivery_get(delivery_id=delivery_id)
        if delivery.client is None:  # the ledger's own webhooks are not a sender's to retry
            raise NotFound("No such delivery.")
        delivery_retry_now(delivery_id=delivery.pk, actor=request.user)
        context = _sent_context(request, delivery.client)
    except ApplicationError as error:
        return render_error_page(request, error)
    return render(request, "messaging/send_panel.html#sent-list", context)
