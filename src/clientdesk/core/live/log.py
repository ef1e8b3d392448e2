"""Reads of the live-event log for code on an event loop, each in a thread that gives its
database connection back at once: streams wait for minutes, and a connection held per stream
would exhaust the pool."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import QuerySet

from clientdesk.core.models import LiveEvent

# Rows read at once; a reader that gets a full batch reads again.
BATCH = 500

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(eq=False)
class Event:
    id: int
    client_id: uuid.UUID
    type: str
    data: dict[str, Any]
    # Rendered SSE frames by audience, so a burst to many streams encodes each event once.
    frames: dict[str, str] = field(default_factory=dict)


def db_call(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`fn` run in a worker thread, its connection closed when it returns."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


def live_event_head() -> int:
    """The newest event id: a cursor from which a stream sends only what happens next."""
    return LiveEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _events(queryset: QuerySet[LiveEvent]) -> list[Event]:
    return [Event(*row) for row in queryset.values_list("id", "client_id", "type", "data")]


def events_after(cursor: int) -> list[Event]:
    """Every event after `cursor`, up to a batch: what the hub fans out."""
    return _events(LiveEvent.objects.filter(id__gt=cursor).order_by("id")[:BATCH])


def backlog(
    cursor: int, client_ids: frozenset[uuid.UUID] | None, types: frozenset[str] | None
) -> list[Event] | None:
    """Events after `cursor` for one subscriber, up to a batch, or None when the cursor is
    unknown: it was pruned, or never issued here. 0 means "everything still kept"."""
    if cursor and not LiveEvent.objects.filter(id=cursor).exists():
        return None
    queryset = LiveEvent.objects.filter(id__gt=cursor)
    if client_ids is not None:
        queryset = queryset.filter(client_id__in=client_ids)
    if types is not None:
        queryset = queryset.filter(type__in=types)
    return _events(queryset.order_by("id")[:BATCH])
