"""The Clients page and the client details drawer."""

import uuid

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clientdesk.accounts.requests import StaffRequest
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.clients.selectors import client_get, client_search
from clientdesk.core.errors import NotFound
from clientdesk.core.gate import requires
from clientdesk.core.pagination import parse_page
from clientdesk.core.ui import render_error_page


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
    context = {"client": client}
    template = "clients/client_detail.html"
    if request.htmx:
        template += "#drawer"
    return render(request, template, context)
