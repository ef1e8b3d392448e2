"""The staff event stream, `GET /api/v1/events`: live events of every client the user may view,
for a signed-in browser (session) or an API token."""

import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from clientdesk.accounts.models import User
from clientdesk.accounts.selectors import user_for_api_token
from clientdesk.core.bearer import bearer_token
from clientdesk.core.gate import enforced_in_view
from clientdesk.core.live.http import capped_stream_response, stream_unauthenticated
from clientdesk.core.live.log import Event, db_call
from clientdesk.core.live.stream import StreamSpec, sse_frame
from clientdesk.core.problems import problem_response
from clientdesk.messaging.permissions import MessagingPermission


def _bearer(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer` header, "" for any other value, None without."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    return bearer_token(header) or ""


def _staff_user(request: HttpRequest, token: str | None) -> User | None:
    if token is not None:
        return user_for_api_token(token=token) if token else None
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return None
    assert isinstance(user, User)
    return user


def _may_view(user_id: uuid.UUID) -> bool:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    return user is not None and user.has_perm(MessagingPermission.VIEW_MESSAGE)


def _may_follow_broadcasts(user_id: uuid.UUID) -> bool:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    return user is not None and user.has_perm(MessagingPermission.SEND_BROADCAST)


def _token_alive(token: str) -> bool:
    return user_for_api_token(token=token) is not None


def staff_frame(event: Event) -> str:
    """Staff streams see every type, with the client named in the data."""
    frame = event.frames.get("staff")
    if frame is None:
        data = {"client_id": str(event.client_id), **event.data}
        frame = event.frames["staff"] = sse_frame(event_id=event.id, type=event.type, data=data)
    return frame


def staff_render(user_id: uuid.UUID, broadcasts: list[bool]) -> Callable[[Event], str]:
    """How one user's stream renders events. Notifications (`notification.*`) go to their own
    user only. A broadcast's events (`broadcast.progress`) are
    about the broadcast, not a client (their subject id is the broadcast's): they go to its
    creator and to users with *Send a broadcast* (`broadcasts[0]`, re-checked with the rest of
    the stream's access), and to nobody else."""
    me = str(user_id)

    def render(event: Event) -> str:
        if event.type.startswith("notification."):
            # One user's own (followup/notifications.py): a reply that answered them, or their
            # notifications marked read on another tab or device.
            return staff_frame(event) if event.data.get("user_id") == me else ""
        if not event.type.startswith("broadcast."):
            return staff_frame(event)
        if not (broadcasts[0] or event.data.get("created_by") == me):
            return ""
        frame = event.frames.get("staff-broadcast")
        if frame is None:
            frame = sse_frame(event_id=event.id, type=event.type, data=event.data)
            event.frames["staff-broadcast"] = frame
        return frame

    return render


# Only GET reaches the view and it changes nothing, so CSRF has nothing to guard: another
# method is 405 (with or without a session cookie or a token), never "CSRF check failed".
@csrf_exempt
@enforced_in_view(MessagingPermission.VIEW_MESSAGE)
@require_GET
async def staff_events(request: HttpRequest) -> HttpResponseBase:
    token = _bearer(request)
    user = await db_call(_staff_user)(request, token)
    if user is None:
        return stream_unauthenticated(
            detail="Sign in, or send 'Authorization: Bearer <token>' with a staff API token.",
            challenge="Bearer",
        )
    if not await db_call(_may_view)(user.pk):
        return problem_response(
            status_code=403,
            detail="You need the 'Can view message' permission to follow events.",
            type_slug="permission-denied",
        )

    broadcasts = [await db_call(_may_follow_broadcasts)(user.pk)]

    async def still_valid() -> str | None:
        if token and not await db_call(_token_alive)(token):
            return "token_revoked"
        if not await db_call(_may_view)(user.pk):
            return "access_revoked"
        broadcasts[0] = await db_call(_may_follow_broadcasts)(user.pk)
        return None

    render = staff_render(user.pk, broadcasts)
    spec = StreamSpec(client_ids=None, types=None, render=render, still_valid=still_valid)
    limit = settings.STAFF_STREAMS_PER_USER
    return await capped_stream_response(
        request,
        spec,
        holder=f"user:{user.pk}",
        limit=limit,
        refusal=f"You already have {limit} open event streams, the most allowed. Close a tab "
        "or a window, and try again.",
    )
