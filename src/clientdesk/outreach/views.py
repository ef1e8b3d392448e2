"""The Broadcasts pages: the list, the composer with its review (a dry run), a broadcast's page
with its live progress and recipients, its cancel, and the Clients page's "Send to all N
matching" button."""

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from clientdesk.accounts.requests import StaffRequest
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import search_terms
from clientdesk.clients.validators import LANGUAGE_CHOICES
from clientdesk.core.errors import ApplicationError, ValidationFailed
from clientdesk.core.gate import requires
from clientdesk.core.pagination import paginate, parse_page
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.ui import render_error_page, render_toast
from clientdesk.messaging.models import Category
from clientdesk.messaging.permissions import READ_TEMPLATES, MessagingPermission
from clientdesk.messaging.rendering import CATALOGUE
from clientdesk.messaging.selectors import templates_readable
from clientdesk.messaging.services.idempotency import new_idempotency_key
from clientdesk.outreach import services
from clientdesk.outreach.models import Broadcast, BroadcastStatus, RecipientStatus, SkipReason
from clientdesk.outreach.selectors import (
    audience_filter,
    broadcast_get,
    broadcast_recipients,
    broadcasts_visible,
)

SEND_BROADCAST = MessagingPermission.SEND_BROADCAST
LIST_PAGE_SIZE = 50
RECIPIENTS_PAGE_SIZE = 50
ATTRIBUTE_LINES = 20

WHEN_CHOICES = ("now", "at", "local")


def _form(data: QueryDict) -> dict[str, Any]:
    """The composer's fields as typed (what the page shows again), with safe defaults."""
    when = data.get("when", "now")
    return {
        "search": data.get("search", "")[:200],
        "language": data.get("language", "")[:8],
        "attributes": data.get("attributes", "").replace("\r\n", "\n")[:2000],
        "template_id": data.get("template_id", "")[:64],
        # A browser posting the form without htmx sends newlines as CRLF; the counter counts LF.
        "body": data.get("body", "").replace("\r\n", "\n"),
        # Not coerced: an unknown category is the parser's clear 422, like the API's.
        "category": data.get("category", Category.SERVICE)[:20],
        "expects_reply": data.get("expects_reply") == "1",
        "when": when if when in WHEN_CHOICES else "now",
        "send_at": data.get("send_at", "")[:32],
        "send_at_local": data.get("send_at_local", "")[:32],
        "idempotency_key": data.get("idempotency_key", "") or new_idempotency_key(),
    }


def _attributes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) > ATTRIBUTE_LINES:
        raise ValidationFailed(f"Attributes: at most {ATTRIBUTE_LINES} lines.")
    for number, line in enumerate(lines, start=1):
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValidationFailed(
                f"Attributes, line {number}: write it as name = value (e.g. plan = gold)."
            )
        found[name.strip()] = value.strip()
    return found


def _local_instant(request: StaffRequest, text: str) -> str:
    """A `datetime-local` value read in the page's time zone (the one every time on the page is
    shown in), as an ISO instant."""
    try:
        naive = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValidationFailed("Choose the date and time to send at.") from error
    if naive.tzinfo is not None:
        raise ValidationFailed("Choose the date and time to send at.")
    return timezone.make_aware(naive, timezone.get_current_timezone()).isoformat()


def _payload(request: StaffRequest, form: dict[str, Any]) -> dict[str, Any]:
    """The composer's fields as the body `POST /api/v1/broadcasts` takes, so the page and the API
    are checked by the same parser."""
    audience: dict[str, Any] = {}
    if form["search"].strip():
        audience["search"] = form["search"].strip()
    if form["language"]:
        audience["language"] = form["language"]
    attributes = _attributes(form["attributes"])
    if attributes:
        audience["attributes"] = attributes
    if not audience:
        raise ValidationFailed(
            "Choose who gets it: a search, a language or an attribute (the audience is empty)."
        )
    payload: dict[str, Any] = {
        "audience": audience,
        "category": form["category"],
        "expects_reply": form["expects_reply"],
    }
    if form["template_id"]:
        if form["body"].strip():
            raise ValidationFailed(
                "Choose a template or type a text, not both: empty the text box to send the "
                "template, or choose “No template” to send your text."
            )
        payload["template_id"] = form["template_id"]
    else:
        payload["body"] = form["body"]
    if form["when"] == "at":
        payload["send_at"] = _local_instant(request, form["send_at"])
    elif form["when"] == "local":
        if not form["send_at_local"]:
            raise ValidationFailed("Choose the clients' local date and time to send at.")
        payload["send_at_local"] = form["send_at_local"]
    return payload


def _client_names(client_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of the review's first recipients (at most the preview's twenty)."""
    clients = Client.objects.filter(pk__in=client_ids).only("id", "first_name", "last_name")
    return {client.id: client.full_name for client in clients}


def _composer_context(request: StaffRequest, form: dict[str, Any], **extra: Any) -> dict[str, Any]:
    readable = any(request.user.has_perm(perm) for perm in READ_TEMPLATES)
    return {
        "form": form,
        "languages": LANGUAGE_CHOICES,
        "templates": list(templates_readable(user=request.user)[:500]) if readable else [],
        "variables": CATALOGUE.values(),
        **extra,
    }


def _failed(request: StaffRequest, error: ApplicationError, form: dict[str, Any]) -> HttpResponse:
    """The alert toast, the form kept as it was (htmx swaps nothing); without htmx, the page
    again with the error above the form."""
    if request.htmx:
        return render_toast(request, text=error.detail, kind="error", status=error.status)
    context = _composer_context(request, form, error=error)
    return render(request, "outreach/broadcast_new.html", context, status=error.status)


@requires(SEND_BROADCAST)
@require_GET
def broadcast_list(request: StaffRequest) -> HttpResponse:
    try:
        page = paginate(
            broadcasts_visible(user=request.user),
            page=parse_page(request.GET.get("page")),
            size=LIST_PAGE_SIZE,
        )
    except ApplicationError as error:
        return render_error_page(request, error)
    return render(request, "outreach/broadcast_list.html", {"page": page})


@requires(SEND_BROADCAST)
@require_GET
def broadcast_new(request: StaffRequest) -> HttpResponse:
    """The composer, prefilled from the query string (the Clients page passes its search)."""
    form = _form(request.GET)
    form["idempotency_key"] = new_idempotency_key()
    return render(request, "outreach/broadcast_new.html", _composer_context(request, form))


def _when_label(payload: dict[str, Any]) -> str:
    if "send_at" in payload:
        at = datetime.fromisoformat(payload["send_at"]).astimezone(timezone.get_current_timezone())
        return f"at {at:%d %b %Y, %H:%M %Z}"
    if "send_at_local" in payload:
        return f"at {payload['send_at_local'].replace('T', ' ')[:16]} in each client's own zone"
    return "now"


@requires(SEND_BROADCAST)
@require_POST
def broadcast_review(request: StaffRequest) -> HttpResponse:
    """The dry run: how many clients, who is skipped and why, and the first recipients' text
    and delivery time. Writes nothing."""
    form = _form(request.POST)
    try:
        payload = _payload(request, form)
        broadcast_request = services.broadcast_request_parse(payload)
        preview = services.broadcast_preview(actor=request.user, request=broadcast_request)
        names = _client_names([uuid.UUID(row["client_id"]) for row in preview.preview])
    except ApplicationError as error:
        return _failed(request, error, form)
    labels = dict(SkipReason.choices)
    context = {
        "review": preview,
        "category_label": Category(broadcast_request.category).label,
        "when_label": _when_label(payload),
        "skips": [
            (reason, labels.get(reason, reason), count)
            for reason, count in sorted(preview.skipped.items())
            if count
        ],
        "previews": [
            {
                "name": names.get(uuid.UUID(row["client_id"]), row["client_id"]),
                "body": row["body"],
                "deliver_at": datetime.fromisoformat(row["deliver_at"]),
            }
            for row in preview.preview
        ],
    }
    if request.htmx:
        return render(request, "outreach/broadcast_review.html", context)
    return render(
        request, "outreach/broadcast_new.html", _composer_context(request, form, **context)
    )


@requires(SEND_BROADCAST)
@require_POST
def broadcast_send(request: StaffRequest) -> HttpResponse:
    """Creates the broadcast (202 in the API) and opens its page. The compose's key makes a
    second press of the button the same broadcast."""
    form = _form(request.POST)
    try:
        payload = _payload(request, form)
        broadcast_request = services.broadcast_request_parse(payload)
        broadcast, replayed = services.broadcast_create(
            actor=request.user,
            request=broadcast_request,
            idempotency_key=request.POST.get("idempotency_key", ""),
            meta=RequestMeta.from_request(request),
        )
    except ApplicationError as error:
        return _failed(request, error, form)
    if not replayed:
        messages.success(
            request,
            gettext("Broadcast to %(count)s clients created.") % {"count": broadcast.recipients},
        )
    url = reverse("outreach:detail", args=[broadcast.id])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _when_text(broadcast: Broadcast) -> str:
    if broadcast.send_at_local:
        return f"{broadcast.send_at_local.replace('T', ' ')[:16]} in each client's own zone"
    if broadcast.send_at:
        at = broadcast.send_at.astimezone(timezone.get_current_timezone())
        return f"{at:%d %b %Y, %H:%M %Z}"
    return "At once"


def _progress_context(request: StaffRequest, broadcast: Broadcast) -> dict[str, Any]:
    return {
        "broadcast": broadcast,
        "done": broadcast.sent + broadcast.skipped + broadcast.cancelled,
        "when_text": _when_text(broadcast),
        "cancellable": broadcast.status in (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING),
    }


def _recipient_filters(data: QueryDict) -> dict[str, str]:
    status = data.get("status", "")
    reason = data.get("reason", "")
    return {
        "status": status if status in RecipientStatus.values else "",
        "reason": reason if reason in SkipReason.values else "",
    }


def _recipients_context(
    request: StaffRequest, broadcast: Broadcast, filters: dict[str, str]
) -> dict[str, Any]:
    recipients = broadcast_recipients(
        broadcast=broadcast, status=filters["status"] or None, reason=filters["reason"] or None
    ).select_related("client")
    page = paginate(recipients, page=parse_page(request.GET.get("page")), size=RECIPIENTS_PAGE_SIZE)
    query = urlencode({k: v for k, v in filters.items() if v})
    return {
        "page": page,
        "filters": filters,
        "filter_query": f"{query}&" if query else "",
        "statuses": RecipientStatus.choices,
        "reasons": SkipReason.choices,
    }


@requires(SEND_BROADCAST)
@require_GET
def broadcast_detail(request: StaffRequest, broadcast_id: uuid.UUID) -> HttpResponse:
    try:
        broadcast = broadcast_get(user=request.user, broadcast_id=broadcast_id)
        context = {
            **_progress_context(request, broadcast),
            **_recipients_context(request, broadcast, _recipient_filters(request.GET)),
        }
    except ApplicationError as error:
        return render_error_page(request, error)
    return render(request, "outreach/broadcast_detail.html", context)


@requires(SEND_BROADCAST)
@require_GET
def broadcast_progress(request: StaffRequest, broadcast_id: uuid.UUID) -> HttpResponse:
    """The status, counts and progress bar; fetched again on each batch's live event."""
    try:
        broadcast = broadcast_get(user=request.user, broadcast_id=broadcast_id)
    except ApplicationError as error:
        return render_error_page(request, error)
    context = _progress_context(request, broadcast)
    return render(request, "outreach/broadcast_detail.html#progress", context)


@requires(SEND_BROADCAST)
@require_GET
def recipients_table(request: StaffRequest, broadcast_id: uuid.UUID) -> HttpResponse:
    try:
        broadcast = broadcast_get(user=request.user, broadcast_id=broadcast_id)
        context = {
            "broadcast": broadcast,
            **_recipients_context(request, broadcast, _recipient_filters(request.GET)),
        }
    except ApplicationError as error:
        return render_error_page(request, error)
    return render(request, "outreach/broadcast_detail.html#recipients", context)


@requires(SEND_BROADCAST)
@require_POST
def broadcast_cancel(request: StaffRequest, broadcast_id: uuid.UUID) -> HttpResponse:
    try:
        broadcast = services.broadcast_cancel(actor=request.user, broadcast_id=broadcast_id)
    except ApplicationError as error:
        return render_error_page(request, error)
    messages.success(
        request,
        gettext("Broadcast cancelled: %(count)s clients will not get it.")
        % {"count": broadcast.cancelled},
    )
    url = reverse("outreach:detail", args=[broadcast.id])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@requires(SEND_BROADCAST)
@require_GET
def audience_matching(request: StaffRequest) -> HttpResponse:
    """The Clients page's "Send to all N matching" button for its current search, loaded after
    the page so counting a large match never slows the list; nothing when none match."""
    search = request.GET.get("search", "")[:200].strip()
    # No word to search for (only punctuation, say): no audience a broadcast would take.
    count = 0
    if search_terms(search):
        count = Client.objects.filter(audience_filter({"search": search})).count()
    context = {
        "count": count,
        "url": reverse("outreach:new") + "?" + urlencode({"search": search}),
    }
    return render(request, "outreach/send_to_matching.html", context)
