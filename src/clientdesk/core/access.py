"""What each request leaves behind: one access-log line and its request metrics, with the
request's id and user on every line logged while it is served."""

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.functional import SimpleLazyObject

from clientdesk.core import metrics
from clientdesk.core.logs import LogContext, log_context, log_context_reset, log_context_set
from clientdesk.core.middleware import request_id_for

log = logging.getLogger("clientdesk.access")


def request_route(request: HttpRequest) -> str:
    """The URL pattern a request matched (`/api/v1/clients/<id:client_id>`), never its path, so
    that a label or a log field takes a bounded set of values: `static` for static files,
    `unmatched` for any path no pattern matched."""
    match = request.resolver_match
    if match is not None:
        return "/" + str(match.route)
    if request.path_info.startswith(str(settings.STATIC_URL)):
        return "static"
    return "unmatched"


def request_surface() -> str:
    """Where the request being served came in: `api` (the REST API), `panel` (a staff page), or
    `other` outside any request (the worker, a command)."""
    context = log_context()
    if context is None:
        return "other"
    return "api" if context.route().startswith("/api/") else "panel"


def _user_id(request: HttpRequest) -> str:
    """The id of a user already known, without loading one: a user set as it is (by bearer
    authentication) is read; a lazy one is recorded by `UserIdMiddleware` when it loads."""
    user = request.__dict__.get("user")
    if user is None or type(user) is SimpleLazyObject or not user.is_authenticated:
        return ""
    # A client on the portal API is no staff user: no user id to log.
    pk = getattr(user, "pk", None)
    return "" if pk is None else str(pk)


async def _counted(stream: AsyncIterator[bytes], kind: str) -> AsyncIterator[bytes]:
    metrics.EVENT_STREAMS_OPEN.labels(kind=kind).inc()
    try:
        async for chunk in stream:
            yield chunk
    finally:
        metrics.EVENT_STREAMS_OPEN.labels(kind=kind).dec()
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


class AccessMiddleware:
    """Just inside `RequestIdMiddleware`: sees every answer, static files and errors included.
    Sets the log context for the request, then logs one line and counts it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        context = LogContext(
            request_id=request_id_for(request) or uuid.uuid4().hex,
            method=str(request.method) if request.method in metrics.HTTP_METHODS else "other",
            route=lambda: request_route(request),
        )
        token = log_context_set(context)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            route = request_route(request)
            context.user_id = context.user_id or _user_id(request)
            metrics.request_observe(
                route=route,
                method=context.method,
                status=response.status_code,
                seconds=seconds,
            )
            content = getattr(response, "streaming_content", None)
            if isinstance(content, AsyncIterator) and response.get("Content-Type", "").startswith(
                "text/event-stream"
            ):
                kind = "portal" if route.startswith("/portal/") else "staff"
                assert isinstance(response, StreamingHttpResponse)
                response.streaming_content = _counted(content, kind)
            log.info(
                "%s %s %s",
                context.method,
                route,
                response.status_code,
                extra={"status": response.status_code, "duration_ms": round(seconds * 1000, 1)},
            )
            return response
        finally:
            log_context_reset(token)


class UserIdMiddleware:
    """Just after authentication: when the request's user loads (a page or API asks for it),
    its id goes into the log context. Loading is left to whoever asks, so a request that never
    needs the user (health, metrics, static) touches no session."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        context = log_context()
        lazy = request.user

        def load() -> Any:
            if context is not None and lazy.is_authenticated and hasattr(lazy, "pk"):
                context.user_id = str(lazy.pk)
            return lazy

        request.user = cast(Any, SimpleLazyObject(load))
        return self.get_response(request)
