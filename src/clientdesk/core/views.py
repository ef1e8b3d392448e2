"""Views that belong to no app: the health check and the error views."""

from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf as csrf_views
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clientdesk.core.gate import public
from clientdesk.core.problems import body_too_large, is_api_path, problem_response


@public
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any database failure means "not healthy"
        return JsonResponse({"status": "error", "database": str(error)}, status=503)
    return JsonResponse({"status": "ok", "database": connection.vendor})


# Django's error views, answering problem+json under the API prefixes (core/problems.py) and
# Django's own pages elsewhere. They run for errors raised before any view, too: a bad Host, a
# body over the size limit, a failed CSRF check.


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return body_too_large()
    if isinstance(exception, DisallowedHost):
        return problem_response(
            status_code=400,
            detail="The Host header names no host this service answers to.",
            type_slug="bad-host",
        )
    return problem_response(status_code=400, detail="Bad request.", type_slug="bad-request")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.permission_denied(request, exception)
    return problem_response(
        status_code=403, detail="You may not do this.", type_slug="permission-denied"
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.page_not_found(request, exception)
    return problem_response(
        status_code=404, detail=f"No API endpoint at {request.path_info}.", type_slug="not-found"
    )


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.server_error(request)
    return problem_response(
        status_code=500,
        detail="Something went wrong on our side; the request id is in X-Request-ID.",
        type_slug="server-error",
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if not is_api_path(request.path_info):
        return csrf_views.csrf_failure(request, reason)
    return problem_response(
        status_code=403,
        detail=f"CSRF check failed: {reason} Use a bearer token, or send the CSRF token "
        "with session requests.",
        type_slug="csrf-failed",
    )
