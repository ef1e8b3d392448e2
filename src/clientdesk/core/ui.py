"""Helpers for server-rendered pages: toasts and access errors shown the same way everywhere."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from clientdesk.core.errors import ApplicationError


def render_toast(
    request: HttpRequest, *, text: str, kind: str = "success", status: int = 200
) -> HttpResponse:
    """An htmx response that only adds a toast (role status for success, alert for errors)."""
    response = render(request, "toast_oob.html", {"text": text, "kind": kind}, status=status)
    response["HX-Reswap"] = "none"
    return response


def render_error_page(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    # The same reading of the htmx headers as `request.htmx`, for any HttpRequest (the gate's).
    if HtmxDetails(request):
        return render_toast(request, text=error.detail, kind="error", status=error.status)
    return render(request, "error.html", {"error": error}, status=error.status)
