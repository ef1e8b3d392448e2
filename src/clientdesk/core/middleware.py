"""Request ids; problem+json for every API error; the methods an API route answers; domain
errors raised by views; text validity of query strings, forms and stored headers."""

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from clientdesk.core.api import allowed_methods
from clientdesk.core.bounded import BIGINT_MAX, Refused, parse_whole
from clientdesk.core.errors import ApplicationError, ValidationFailed
from clientdesk.core.problems import (
    application_problem,
    body_limit,
    body_too_large,
    is_api_path,
    is_problem,
    method_not_allowed,
    problem_response,
    status_title,
    validation_problem,
)
from clientdesk.core.textcheck import text_problem

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_for(request: HttpRequest) -> str:
    return str(getattr(request, "request_id", ""))


class IdentifiedRequest(HttpRequest):
    """A request as `RequestIdMiddleware` leaves it, for annotations. Never instantiated."""

    request_id: str


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: IdentifiedRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class ApiProblemMiddleware:
    """Outermost: under the API prefixes a body over the size limit is a 413 before it is read,
    and any error answer that is not yet problem+json (a 405 of a plain view, a page that
    slipped through) becomes one with the same status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not is_api_path(request.path_info):
            return self.get_response(request)
        try:
            length = parse_whole(
                request.META.get("CONTENT_LENGTH") or "0", minimum=0, maximum=BIGINT_MAX
            )
        except Refused as error:
            return problem_response(
                status_code=400, detail=f"Content-Length {error}.", type_slug="bad-request"
            )
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            limit = body_limit(request.path_info)
            if length > limit:
                return body_too_large(limit)
        response = self.get_response(request)
        if response.status_code >= 400 and not is_problem(response):
            converted = problem_response(
                status_code=response.status_code,
                detail=f"{status_title(response.status_code)}.",
                type_slug=status_title(response.status_code).lower().replace(" ", "-"),
            )
            for header in ("Allow", "WWW-Authenticate", "Retry-After", "X-Request-ID"):
                if header in response:
                    converted[header] = response[header]
            return converted
        return response


class ApiRouteMiddleware:
    """Under the API prefixes, before any credential or CSRF check: a method a class-based view
    has no handler for is 405 with `Allow`, for anyone (the routes are public in the OpenAPI
    document). Listed before CsrfViewMiddleware, so a wrong method is never answered "CSRF
    check failed"; the plain views under the API (event streams, the 404 of unknown paths) are
    CSRF-exempt and answer their own 405 and 404."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        view_class = getattr(view_func, "view_class", None)
        if view_class is None or not is_api_path(request.path_info):
            return None
        allowed = allowed_methods(view_class)
        if request.method not in allowed:
            return method_not_allowed(str(request.method), allowed)
        return None


class ApplicationErrorMiddleware:
    """A domain error a page or a plain API view lets through is shown as everywhere else (the
    error page or toast; problem+json under the API) rather than as a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        if not isinstance(exception, ApplicationError):
            return None
        if is_api_path(request.path_info):
            return application_problem(exception)
        from clientdesk.core.ui import render_error_page  # templates need the apps loaded

        return render_error_page(request, exception)


# Headers stored with what they come with (a message keeps the sender's User-Agent).
STORED_HEADERS = ("User-Agent", "Idempotency-Key")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class TextValidityMiddleware:
    """Refuse NUL and lone surrogates in the path, the query string, form fields and stored
    headers before any view: a 422 naming each field (problem+json in the API, the error page or
    toast elsewhere). JSON bodies are checked by the API's parser."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        errors = self.problems(request)
        if not errors:
            return self.get_response(request)
        if is_api_path(request.path_info):
            return validation_problem(errors)
        from clientdesk.core.ui import render_error_page  # templates need the apps loaded

        detail = "; ".join(f"{field} {' '.join(problems)}" for field, problems in errors.items())
        return render_error_page(request, ValidationFailed(detail, errors=errors))

    @staticmethod
    def problems(request: HttpRequest) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}

        def check(field: str, value: str) -> None:
            if problem := text_problem(value):
                errors.setdefault(field, []).append(problem)

        check("path", request.path)
        sources = [request.GET]
        if request.method == "POST" and request.content_type in _FORM_TYPES:
            sources.append(request.POST)
        for source in sources:
            for name, values in source.lists():
                check(name, name)
                for value in values:
                    check(name, value)
        for header in STORED_HEADERS:
            check(header, request.headers.get(header, ""))
        return errors
