"""RFC 9457 problem details: the one error shape of the HTTP API."""

from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from clientdesk.core.errors import ApplicationError

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://clientdesk.dev/problems/"


def problem_body(
    *, status_code: int, title: str, detail: str, type_slug: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": TYPE_BASE + type_slug,
        "title": title,
        "status": status_code,
        "detail": detail,
        **extra,
    }


def _flatten_errors(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error structure into {"field.sub": ["message", ...]}."""
    if isinstance(data, dict):
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten_errors(value, name))
        return out
    if isinstance(data, list) and data and all(not isinstance(v, (dict, list)) for v in data):
        return {prefix or "non_field_errors": [str(v) for v in data]}
    if isinstance(data, list):
        out = {}
        for index, value in enumerate(data):
            out.update(_flatten_errors(value, f"{prefix}[{index}]"))
        return out
    return {prefix or "non_field_errors": [str(data)]}


def _summary(errors: dict[str, list[str]]) -> str:
    return "; ".join(
        f"{field}: {' '.join(messages)}" if field != "non_field_errors" else " ".join(messages)
        for field, messages in errors.items()
    )


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body = problem_body(
            status_code=exc.status,
            title=exc.title,
            detail=exc.detail,
            type_slug=exc.type_slug,
            **exc.extra,
        )
        return Response(body, status=exc.status, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, RequestDataTooBig):
        return Response(_too_large(), status=413, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten_errors(exc.detail)
        body = problem_body(
            status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            title="Validation failed",
            detail=_summary(errors),
            type_slug="validation-failed",
            errors=errors,
        )
        response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    elif isinstance(exc, exceptions.APIException):
        detail = (
            exc.detail if isinstance(exc.detail, str) else _summary(_flatten_errors(exc.detail))
        )
        body = problem_body(
            status_code=response.status_code,
            title=status_title(response.status_code),
            detail=str(detail),
            type_slug=exc.default_code.replace("_", "-"),
        )
    else:
        return response
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def status_title(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def problem_response(*, status_code: int, detail: str, type_slug: str) -> JsonResponse:
    """A problem+json response for plain Django views (e.g. 404 under /api/)."""
    return JsonResponse(
        problem_body(
            status_code=status_code,
            title=status_title(status_code),
            detail=detail,
            type_slug=type_slug,
        ),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def application_problem(error: ApplicationError) -> JsonResponse:
    """A domain error as problem+json, for the API's plain Django views (event streams)."""
    body = problem_body(
        status_code=error.status,
        title=error.title,
        detail=error.detail,
        type_slug=error.type_slug,
        **error.extra,
    )
    return JsonResponse(body, status=error.status, content_type=PROBLEM_CONTENT_TYPE)


def method_not_allowed(method: str, allowed: list[str]) -> JsonResponse:
    response = problem_response(
        status_code=405,
        detail=f"{method[:20]} is not allowed here; use {', '.join(allowed)}.",
        type_slug="method-not-allowed",
    )
    response["Allow"] = ", ".join(allowed)
    return response


def is_api_path(path: str) -> bool:
    """Requests under these prefixes (the staff API, the portal API) are answered in
    problem+json whatever goes wrong, including what Django refuses before any view runs."""
    return path.startswith(tuple(settings.CLIENTDESK_API_PATH_PREFIXES))


def is_problem(response: Any) -> bool:
    return str(response.get("Content-Type", "")).startswith(PROBLEM_CONTENT_TYPE)


def _too_large(limit: int | None = None) -> dict[str, Any]:
    """The one 413: announced too large (the middleware), or found so while read (a view);
    `limit`: a route's own (`body_limit`), else DATA_UPLOAD_MAX_MEMORY_SIZE."""
    limit = limit or settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return problem_body(
        status_code=413,
        title=status_title(413),
        detail=f"The request body is over the limit of {limit:,} bytes.",
        type_slug="body-too-large",
    )


def body_too_large(limit: int | None = None) -> JsonResponse:
    return JsonResponse(_too_large(limit), status=413, content_type=PROBLEM_CONTENT_TYPE)


def body_limit(path: str) -> int:
    """The largest body a route takes: `max_body_bytes` of its view class (a route that
    streams its body, such as the client import), else DATA_UPLOAD_MAX_MEMORY_SIZE."""
    try:
        view = resolve(path).func
    except Resolver404:
        return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    limit = getattr(getattr(view, "view_class", None), "max_body_bytes", None)
    return int(limit if limit is not None else settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def validation_problem(errors: dict[str, list[str]]) -> JsonResponse:
    body = problem_body(
        status_code=422,
        title="Validation failed",
        detail=_summary(errors),
        type_slug="validation-failed",
        errors=errors,
    )
    return JsonResponse(body, status=422, content_type=PROBLEM_CONTENT_TYPE)
