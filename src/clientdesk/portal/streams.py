"""The client's event stream, `GET /portal/api/v1/events`: the client's new messages (from the
business or their own, from another device) and read receipts, for one portal session."""

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from clientdesk.core.bearer import bearer_token
from clientdesk.core.gate import CLIENT_SESSION, declared
from clientdesk.core.live.http import capped_stream_response, stream_unauthenticated
from clientdesk.core.live.log import Event, db_call
from clientdesk.core.live.stream import StreamSpec, sse_frame
from clientdesk.portal.services import (
    SESSIONS_REVOKED,
    portal_session_authenticate,
    portal_session_live,
)

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
        # By the session, not the token: a refresh gave the cabinet a newer token and moved the
        # session's end, and the stream goes on until that end.
        alive = await db_call(portal_session_live)(
            session_id=session.id, client_id=session.client_id
        )
        if alive is None:
            ended = spec.expires_at is not None and spec.expires_at <= timezone.now()
            return "session_expired" if ended else "session_revoked"
        spec.expires_at = alive.expires_at
        return None

    mine = str(session.id)

    def closes(event: Event) -> str | None:
        """Sign-out or deactivation ended this session (in any process): close at once."""
        if event.type != SESSIONS_REVOKED:
            return None
        if event.data.get("all") or mine in event.data.get("sessions", ()):
            return str(event.data.get("reason") or "session_revoked")
        return None

    spec = StreamSpec(
        client_ids=frozenset({session.client_id}),
        types=PORTAL_TYPES | {SESSIONS_REVOKED},
        render=portal_frame,
        still_valid=still_valid,
        expires_at=session.expires_at,
        closes=closes,
    )
    limit = settings.PORTAL_STREAMS_PER_CLIENT
    return await capped_stream_response(
        request,
        spec,
        holder=f"client:{session.client_id}",
        limit=limit,
        refusal=f"This account already has {limit} open event streams, the most allowed (all "
        "its sign-ins together). Close a tab or a window, and try again.",
        query=("token",),
    )
