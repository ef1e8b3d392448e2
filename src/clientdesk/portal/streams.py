"""The client's event stream, `GET /portal/api/v1/events`: the client's new messages (from the
business or their own, from another device) and read receipts, for one portal session."""

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from clientdesk.core.api import check_query
from clientdesk.core.bearer import bearer_token
from clientdesk.core.gate import CLIENT_SESSION, declared
from clientdesk.core.live import (
    Event,
    StreamSpec,
    db_call,
    parse_cursor,
    sse_frame,
    sse_response,
    stream_declined,
)
from clientdesk.core.problems import problem_response
from clientdesk.portal.services import portal_session_authenticate

PORTAL_TYPES = frozenset({"message.created", "message.read"})


def portal_frame(event: Event) -> str:
    """The client sees the data as the portal API lists it: no client id, no staff details."""
    frame = event.frames.get("portal")
    if frame is None:
        frame = event.frames["portal"] = sse_frame(
            event_id=event.id, type=event.type, data=event.data
        )
    return frame


# Only GET reaches the view and it changes nothing, so CSRF has nothing to guard: another
# method is 405 (with or without a token), never "CSRF check failed".
@csrf_exempt
@declared(CLIENT_SESSION)
@require_GET
async def portal_events(request: HttpRequest) -> HttpResponseBase:
    header = request.headers.get("Authorization")
    # EventSource cannot send headers, so the short-lived token may come in the URL instead.
    token = bearer_token(header) if header is not None else request.GET.get("token")
    session = await db_call(portal_session_authenticate)(token=token) if token else None
    if session is None:
        response = problem_response(
            status_code=401,
            detail="Unknown or expired portal session token: ask your portal for a new session.",
            type_slug="not-authenticated",
        )
        response["WWW-Authenticate"] = 'Bearer realm="portal"'
        return response

    async def still_valid() -> str | None:
        alive = await db_call(portal_session_authenticate)(token=token)
        return None if alive is not None else "session_revoked"

    check_query(request, ("token", "last_event_id"))
    # The header wins: a browser reconnecting sends it, newer than the URL's.
    cursor = parse_cursor(request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"))
    spec = StreamSpec(
        client_ids=frozenset({session.client_id}),
        types=PORTAL_TYPES,
        render=portal_frame,
        still_valid=still_valid,
        expires_at=session.expires_at,
    )
    if (declined := stream_declined(request)) is not None:
        return declined
    return sse_response(spec, cursor=cursor)
