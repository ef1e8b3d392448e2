"""The Clients page, the client details drawer (with the time zone and the consent to outreach)
and the import of clients from CSV."""

import uuid
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientdesk.accounts.requests import StaffRequest
from clientdesk.clients.importing import ImportRefused, ImportTooLarge, clients_import
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.clients.selectors import client_get, client_search
from clientdesk.clients.services import client_update
from clientdesk.core.errors import ApplicationError, NotFound
from clientdesk.core.gate import requires
from clientdesk.core.pagination import parse_page
from clientdesk.core.ui import render_error_page
from clientdesk.core.zones import zone_groups


@requires(ClientsPermission.VIEW_CLIENT)
@require_GET
def client_list(request: StaffRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:200]
    page = client_search(
        query=query, page=parse_page(request.GET.get("page")), size=settings.CLIENTS_PAGE_SIZE
    )
    context = {
        "query": query,
        "page": page,
    }
    template = "clients/client_list.html"
    if request.htmx and request.htmx.target == "client-table":
        template += "#client-table"
    return render(request, template, context)


@requires(ClientsPermission.VIEW_CLIENT)
@require_GET
def client_detail(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    try:
        client = client_get(client_id=client_id)
    except NotFound as error:
        return render_error_page(request, error)
    context = {"client": client, "zones": zone_groups()}
    template = "clients/client_detail.html"
    if request.htmx:
        template += "#drawer"
    return render(request, template, context)


def _details_changed(
    request: StaffRequest, client_id: uuid.UUID, changes: dict[str, Any], done: str
) -> HttpResponse:
    """Apply `changes` and answer the drawer's details section with a toast."""
    try:
        client = client_update(
            actor=request.user, client_id=client_id, changes=changes, via="staff_ui"
        )
    except ApplicationError as error:
        return render_error_page(request, error)
    context = {"client": client, "zones": zone_groups(), "toast": done}
    template = "clients/client_detail.html"
    if request.htmx:
        template += "#details"
    return render(request, template, context)


@requires(ClientsPermission.CHANGE_CLIENT)
@require_POST
def client_timezone(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    zone = request.POST.get("timezone", "")[:64]
    return _details_changed(
        request, client_id, {"timezone": zone}, f"Time zone set to {zone or 'the default'}."
    )


@requires(ClientsPermission.CHANGE_CLIENT)
@require_POST
def client_consent(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    """Record the client's written request to stop (or resume) outreach."""
    opt_out = request.POST.get("outreach_opt_out") == "1"
    done = (
        "Recorded: the client gets no outreach."
        if opt_out
        else "Recorded: the client gets outreach again."
    )
    return _details_changed(request, client_id, {"outreach_opt_out": opt_out}, done)


@requires(ClientsPermission.ADD_CLIENT)
@require_http_methods(["GET", "POST"])
def client_import(request: StaffRequest) -> HttpResponse:
    """GET: the dialog to choose a CSV file. POST `action=preview`: a dry run (the first rows and
    the errors by line); `action=import`: the import and its report."""
    template = "clients/client_import.html"
    context: dict[str, Any] = {"max_mb": settings.CLIENTS_IMPORT_MAX_BYTES // (1024 * 1024)}
    if request.method == "GET":
        return render(request, template + ("#dialog" if request.htmx else ""), context)
    dry_run = request.POST.get("action") != "import"
    context["dry_run"] = dry_run
    status = 200
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > settings.CLIENTS_IMPORT_MAX_BYTES + 64 * 1024:
            raise ImportTooLarge(
                f"The file is over the limit of {context['max_mb']} MB.",
            )
        upload = request.FILES.get("file")
        if upload is None:
            raise ImportRefused("Choose a CSV file first.")
        with upload:
            report = clients_import(
                stream=upload,
                actor=request.user,
                via="clients_page",
                dry_run=dry_run,
                max_bytes=settings.CLIENTS_IMPORT_MAX_BYTES,
            )
        context["report"] = report
        context["file_name"] = upload.name
    except ApplicationError as error:
        context["refused"] = error.detail
        status = error.status
    if request.htmx:
        # Shown in the dialog whatever happened (htmx swaps only 2xx answers).
        return render(request, template + "#result", context)
    return render(request, template, context, status=status)
