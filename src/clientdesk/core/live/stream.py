"""The body of a Server-Sent Events response of live events: the backlog after a cursor, then
events as they commit, a comment every 15 s, and `stream.closed` when the session ends. When the
server stops, the body just ends: the browser reconnects (to another process) with
`Last-Event-ID` and misses nothing."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from clientdesk.core.live.hub import hub
from clientdesk.core.live.log import BATCH, Event, backlog, db_call, live_event_head

HEARTBEAT_SECONDS = 15.0
REVALIDATE_SECONDS = 60.0
RETRY_MS = 3000


def sse_frame(*, event_id: int, type: str, data: Any) -> str:
    # JSON escapes newlines, so the payload is always one `data:` line.
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {type}\ndata: {payload}\n\n"


@dataclass
class StreamSpec:
    """What one stream may see and how it renders and re-checks itself."""

    client_ids: frozenset[uuid.UUID] | None
    types: frozenset[str] | None
    render: Callable[[Event], str]
    # Returns None while the stream may go on, else the reason to close it.
    still_valid: Callable[[], Awaitable[str | None]]
    expires_at: datetime | None = None
    # For a control event (type `control.*`, never sent to anyone): the reason it ends this
    # stream (a revoked session), or None. Without it control events are skipped.
    closes: Callable[[Event], str | None] | None = None
    # Called once when the stream ends, however it ends (gives its lease back). Never waits.
    on_end: Callable[[], None] | None = None


CONTROL_PREFIX = "control."


def _render(spec: StreamSpec, events: list[Event], sent: int) -> tuple[str, int, str | None]:
    """The frames of `events` after `sent`, the new cursor, and the reason to close the stream
    when a control event among them ends it (frames after it are not sent)."""
    frames: list[str] = []
    for event in events:
        if event.id <= sent:
            continue
        sent = event.id
        if event.type.startswith(CONTROL_PREFIX):
            reason = spec.closes(event) if spec.closes is not None else None
            if reason is not None:
                return "".join(frames), sent, reason
            continue
        frames.append(spec.render(event))
    return "".join(frames), sent, None


def _closed_frame(event_id: int, reason: str) -> str:
    return sse_frame(event_id=event_id, type="stream.closed", data={"reason": reason})


async def _catch_up(spec: StreamSpec, sent: int) -> AsyncIterator[Event | None]:
    """Every stored event after `sent` that `spec` may see, in order; a single None when
    `sent` is unknown (pruned, or never issued here)."""
    while True:
        events = await db_call(backlog)(sent, spec.client_ids, spec.types)
        if events is None:
            yield None
            return
        for event in events:
            yield event
            sent = event.id
        if len(events) < BATCH:
            return


async def live_stream(spec: StreamSpec, *, cursor: int | None) -> AsyncIterator[str]:
    """The stream after `cursor` (None: from now on)."""
    yield f"retry: {RETRY_MS}\n: connected\n\n"
    the_hub = hub()
    sub = await the_hub.subscribe(client_ids=spec.client_ids, types=spec.types)
    try:
        sent = sub.start_id if cursor is None else cursor
        if cursor is None:
            yield f"id: {sent}\n\n"  # sets the browser's Last-Event-ID without an event
        loop = asyncio.get_running_loop()
        next_check = loop.time() + REVALIDATE_SECONDS
        # A given cursor starts with the backlog; so does a stream that fell behind.
        reread = cursor is not None
        while True:
            if reread:
                reread = False
                async for event in _catch_up(spec, sent):
                    if sub.ended:
                        return
                    if event is None:
                        sent = max(sub.start_id, await db_call(live_event_head)())
                        yield sse_frame(
                            event_id=sent, type="stream.reset", data={"reason": "cursor_expired"}
                        )
                        break
                    frames, sent, reason = _render(spec, [event], sent)
                    if frames:
                        yield frames
                    if reason is not None:
                        yield _closed_frame(sent, reason)
                        return
            timeout = HEARTBEAT_SECONDS
            if spec.expires_at is not None:
                left = (spec.expires_at - timezone.now()).total_seconds()
                if left <= 0:
                    # The session may have been renewed since: `still_valid` then moves
                    # `expires_at` on and the stream goes on.
                    reason = await spec.still_valid()
                    left = (spec.expires_at - timezone.now()).total_seconds()
                    if reason is not None or left <= 0:
                        yield _closed_frame(sent, reason or "session_expired")
                        return
                    next_check = loop.time() + REVALIDATE_SECONDS
                timeout = min(timeout, left)
            batch = await sub.next(timeout)
            if sub.ended:
                return  # the server stops: what was not sent is resent after Last-Event-ID
            if batch is None:
                reread = True
                continue
            chunk, sent, reason = _render(spec, batch, sent)
            if reason is not None:
                yield chunk + _closed_frame(sent, reason)
                return
            yield chunk or ": keep-alive\n\n"
            if loop.time() >= next_check:
                next_check = loop.time() + REVALIDATE_SECONDS
                reason = await spec.still_valid()
                if reason is not None:
                    yield _closed_frame(sent, reason)
                    return
    finally:
        the_hub.unsubscribe(sub)
        if spec.on_end is not None:
            spec.on_end()
