"""Views that belong to no app: the health checks and the error views."""

import sys

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.migrations.loader import MigrationLoader
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views import csrf as csrf_views
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clientdesk.core.gate import public
from clientdesk.core.problems import (
    PROBLEM_CONTENT_TYPE,
    body_too_large,
    is_api_path,
    problem_body,
    problem_response,
)

# How long a client should wait before trying again while the database is away.
RETRY_AFTER_SECONDS = 5


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


@public
@never_cache
@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    """The process serves: nothing else is touched, so a database outage never restarts it."""
    return JsonResponse({"status": "ok"})


def _not_ready() -> list[str]:
    try:
        loader = MigrationLoader(connection)
    except DatabaseError as error:
        return [f"the database does not answer ({type(error).__name__})"]
    pending = sorted(key for key in loader.graph.nodes if key not in loader.applied_migrations)
    if pending:
        names = ", ".join(f"{app}.{name}" for app, name in pending[:10])
        return [f"{len(pending)} migration(s) not applied: {names}"]
    return []


@public
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: the database answers and every migration of this code is applied."""
    reasons = _not_ready()
    if not reasons:
        return JsonResponse({"status": "ready"})
    response = JsonResponse(
        problem_body(
            status_code=503,
            title="Service Unavailable",
            detail="Not ready: " + "; ".join(reasons) + ".",
            type_slug="not-ready",
            not_ready=reasons,
        ),
        status=503,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


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
    return problem_response(
        status_code=400, detail=_form_problem(exception) or "Bad request.", type_slug="bad-request"
    )


def _form_problem(exception: Exception) -> str | None:
    """What is wrong with a form or multipart body Django's parser refused, said so that the
    sender can fix it; None for any other bad request."""
    if isinstance(exception, TooManyFieldsSent):
        return f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields."
    if isinstance(exception, TooManyFilesSent):
        return (
            f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files; an upload "
            "sends one, in the field 'file'."
        )
    if isinstance(exception, MultiPartParserError):
        # Django's own words: the boundary, a part's headers over its limit, broken base64.
        return f"The multipart/form-data body could not be read: {str(exception)[:200]}"
    return None


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


def _database_away() -> bool:
    """Whether the error being handled is the database not answering (down, restarting, a
    dropped connection, no free connection in the pool, SQLite's file out of reach)."""
    return isinstance(sys.exc_info()[1], (OperationalError, InterfaceError))


def _database_away_response(request: HttpRequest) -> HttpResponse:
    detail = "The database is not answering; nothing was changed. Try again in a few seconds."
    response: HttpResponse
    if is_api_path(request.path_info):
        response = problem_response(
            status_code=503, detail=detail, type_slug="database-unavailable"
        )
    else:
        # No template: rendering the site's pages reads the database (user, banners).
        response = HttpResponse(
            "<!doctype html><html lang=en><meta charset=utf-8><title>Service unavailable</title>"
            f"<h1>Service unavailable</h1><p>{detail}</p></html>",
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    if _database_away():
        return _database_away_response(request)
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
