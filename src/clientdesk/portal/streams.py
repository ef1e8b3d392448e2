"""The client's event stream, `GET /portal/api/v1/events`: the client's new messages (from the
business or their own, from another device) and read receipts, for one portal session."""

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from clientdesk.core.bearer import bearer_token
from clientdesk.core.gate import CLIENT_SESSION, declared
from clientdesk.core.live.http import stream_response, stream_unauthenticated
from clientdesk.core.live.log import Event, db_call
from clientdesk.core.live.stream import StreamSpec, sse_frame
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
    if session is None or not token:
        return stream_unauthenticated(
            detail="Unknown or expired portal session token: ask your portal for a new session.",
            challenge='Bearer realm="portal"',
        )

    async def still_valid() -> str | None:
        alive = await db_call(portal_session_authenticate)(token=token)
        return None if alive is not None else "session_revoked"

    spec = StreamSpec(
        client_ids=frozenset({session.client_id}),
        types=PORTAL_TYPES,
        render=portal_frame,
        still_valid=still_valid,
        expires_at=session.expires_at,
    )
    return stream_response(request, spec, query=("token",))
