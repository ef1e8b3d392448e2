"""How both event-stream views (`messaging/streams.py`, `portal/streams.py`) answer: once their
own credential check let the caller in, the same query rules, cursor and response."""

import weakref
from collections.abc import Iterable

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from clientdesk.core.api import check_query
from clientdesk.core.bounded import BIGINT_MAX, Refused, parse_whole, refused
from clientdesk.core.live.leases import RETRY_AFTER_SECONDS, leases
from clientdesk.core.live.stream import StreamSpec, live_stream
from clientdesk.core.problems import problem_response

SSE_TYPE = "text/event-stream"


def stream_unauthenticated(*, detail: str, challenge: str) -> JsonResponse:
    """401 problem+json asking for `challenge` (`WWW-Authenticate`)."""
    response = problem_response(status_code=401, detail=detail, type_slug="not-authenticated")
    response["WWW-Authenticate"] = challenge
    return response


def parse_cursor(value: str | None) -> int | None:
    """A Last-Event-ID as sent by us (decimal digits, at most the largest event id a database
    holds), None when absent; ValidationFailed naming `Last-Event-ID` otherwise."""
    if value is None or value == "":
        return None
    try:
        return parse_whole(value, minimum=0, maximum=BIGINT_MAX)
    except Refused as error:
        raise refused("Last-Event-ID", error, value) from error


def stream_declined(request: HttpRequest) -> HttpResponse | None:
    """204 when a WSGI server runs the stream view, else None.

    A WSGI server would read the endless stream to its end and hold a thread forever (a proxy
    that sends the events path to the wrong process, or a test server). 204 is the SSE answer
    that tells EventSource not to reconnect: pages then stay as loaded.
    """
    return None if isinstance(request, ASGIRequest) else HttpResponse(status=204)


def stream_refused_cap(*, detail: str) -> JsonResponse:
    """429 problem+json with `Retry-After`: the caller holds as many streams as it may."""
    response = problem_response(status_code=429, detail=detail, type_slug="too-many-streams")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def capped_stream_response(
    request: HttpRequest,
    spec: StreamSpec,
    *,
    holder: str,
    limit: int,
    refusal: str,
    query: Iterable[str] = (),
) -> HttpResponseBase:
    """`stream_response`, once `holder` (`client:<id>`, `user:<id>`) took one of its `limit`
    stream leases (counted by every events process); else 429 with `refusal` as its detail."""
    check_query(request, ("last_event_id", *query))
    parse_cursor(request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"))
    if (declined := stream_declined(request)) is not None:
        return declined
    the_leases = leases()
    lease = await the_leases.acquire(holder, limit)
    if lease is None:
        return stream_refused_cap(detail=refusal)
    spec.on_end = lambda: the_leases.release(lease)
    response = stream_response(request, spec, query=query)
    # A body that is never read (the caller left before it started) ends no stream: the lease
    # is given back when the body is dropped.
    if isinstance(response, StreamingHttpResponse):
        weakref.finalize(response, the_leases.release, lease)
    else:
        the_leases.release(lease)
    return response


def stream_response(
    request: HttpRequest, spec: StreamSpec, *, query: Iterable[str] = ()
) -> HttpResponseBase:
    """The stream `spec` describes, for a caller already admitted. The query may hold
    `last_event_id` and the names in `query` (any other is a 422); the cursor is the
    `Last-Event-ID` header, which a reconnecting browser sends newer than the URL's, else
    `?last_event_id=`."""
    check_query(request, ("last_event_id", *query))
    cursor = parse_cursor(request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"))
    if (declined := stream_declined(request)) is not None:
        return declined
    response = StreamingHttpResponse(live_stream(spec, cursor=cursor), content_type=SSE_TYPE)
    response["Cache-Control"] = "no-cache"
    # nginx and similar proxies would otherwise hold events back in their buffers.
    response["X-Accel-Buffering"] = "no"
    return response
