"""The Activity log section of the client details drawer."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clientdesk.audit.selectors import check_can_view_activity, client_activity
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import ApplicationError
from clientdesk.core.pagination import paginate, parse_page
from clientdesk.core.ui import render_error_page

ACTIVITY_PAGE_SIZE = 20


@login_required
@require_GET
def activity_log(request: HttpRequest, client_id: str) -> HttpResponse:
    try:
        client = client_get(client_id=client_id)
        check_can_view_activity(request.user)  # type: ignore[arg-type]
    except ApplicationError as error:
        return render_error_page(request, error)
    page = paginate(
        client_activity(client=client).select_related("actor_user"),
        page=parse_page(request.GET.get("page")),
        size=ACTIVITY_PAGE_SIZE,
    )
    template = "audit/activity_log.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#activity-items"
    return render(request, template, {"client": client, "page": page})
