"""Live events: rows written in the transaction of a change, announced after commit, and fanned
out to the event streams (SSE) held open by every web process.

Writing: `live_event_record` inserts a `LiveEvent` inside the caller's transaction. On PostgreSQL
it first takes a transaction-scoped advisory lock, so rows become visible in `id` order and a
reader that has seen id N never later finds a smaller id committing behind it. SQLite has one
writer at a time, which gives the same order.

Announcing (ids only, never the payload): PostgreSQL `pg_notify`, delivered at commit to every
process LISTENing on any host; Redis pub/sub after commit when `REDIS_URL` is set; on SQLite a
datagram after commit to each web process's socket under `var/events/` (the worker writes
delivery events from another process). A lost announcement only delays an event: the hub also
looks for new rows every few seconds while streams are open.

Reading: one `Hub` per process (per event loop) holds the listener and a high-water mark. When
woken it reads the new rows once and hands each to the matching subscriptions in memory, so a
thousand open streams cost one query per burst, and no stream holds a database connection while
it waits. A stream subscribes before it reads its backlog (as Zulip registers a queue before the
initial fetch), then skips ids it already sent, so nothing is lost or sent twice.
"""

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from clientdesk.core.bounded import BIGINT_MAX, Refused, parse_whole, refused
from clientdesk.core.models import LiveEvent
from clientdesk.core.notify import datagram_poke
from clientdesk.core.postgres import listen_connection_params

log = logging.getLogger(__name__)

CHANNEL = "clientdesk_events"
SSE_TYPE = "text/event-stream"
# Any constant works; it only has to differ from the other advisory locks (the ledger's).
# Callers record their live events as the last writes of their transaction: a transaction that
# holds this lock waits for nothing else (no row lock, no write, no foreign-key check at commit),
# so it is held briefly and cannot deadlock. tests/delivery/test_live_lock_order.py checks every
# flow statement by statement.
_ORDER_LOCK = 0x4C495645  # "LIVE"
_CHECK_THEN_LOCK = f"SET CONSTRAINTS ALL IMMEDIATE; SELECT pg_advisory_xact_lock({_ORDER_LOCK})"
HEARTBEAT_SECONDS = 15.0
SAFETY_POLL_SECONDS = 5.0
REVALIDATE_SECONDS = 60.0
RETRY_MS = 3000
BATCH = 500
# A subscriber that falls further behind than this rereads from the table instead.
MAX_PENDING = 256


# --- writing ----------------------------------------------------------------------------------


def live_event_record(*, client_id: uuid.UUID | str, type: str, data: dict[str, Any]) -> LiveEvent:
    """Record an event about `client_id` in the current transaction; streams get it after
    commit. `data` must be JSON and safe for every audience that may receive `type`."""
    return live_events_record([(client_id, type, data)])[0]


def live_events_record(
    events: Sequence[tuple[uuid.UUID | str, str, dict[str, Any]]],
) -> list[LiveEvent]:
    """Record several `(client_id, type, data)` events in the current transaction: one ordering
    lock, one insert and one announcement (readers fetch every row past their cursor)."""
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        raise RuntimeError("live events must be recorded inside transaction.atomic()")
    if not events:
        return []
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            # Django's foreign keys are checked at COMMIT (DEFERRABLE INITIALLY DEFERRED); a
            # check may wait for another transaction's row lock. Run them now, before the lock.
            cursor.execute(_CHECK_THEN_LOCK)
    now = timezone.now()
    rows = LiveEvent.objects.bulk_create(
        LiveEvent(client_id=client_id, type=type, data=data, created_at=now)
        for client_id, type, data in events
    )
    _announce(max(row.id for row in rows), conn.vendor)
    return rows


def live_events_prune_job(now: datetime) -> None:
    """The worker's job (core.jobs)."""
    live_events_prune()


def live_events_prune() -> int:
    """Delete events older than the retention, keeping the newest so the head stays a valid
    cursor. A stream resuming from a deleted id gets `stream.reset`."""
    cutoff = timezone.now() - timedelta(hours=settings.LIVE_EVENT_RETENTION_HOURS)
    newest = _head()
    deleted, _ = LiveEvent.objects.filter(created_at__lt=cutoff, id__lt=newest).delete()
    return deleted


def _announce(event_id: int, vendor: str) -> None:
    if settings.REDIS_URL:
        transaction.on_commit(lambda: _publish_redis(event_id))
    elif vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(event_id)])
    else:
        transaction.on_commit(_poke_web_processes)


_redis_client: Any = None


def _publish_redis(event_id: int) -> None:
    global _redis_client
    import redis

    try:
        if _redis_client is None:
            _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        _redis_client.publish(CHANNEL, str(event_id))
    except redis.RedisError:
        # The row is committed; streams find it on their next safety poll.
        log.warning("could not announce live event %s on Redis", event_id, exc_info=True)


def _socket_dir() -> Path:
    return Path(settings.VAR_DIR) / "events"


def _poke_web_processes() -> None:
    datagram_poke(_socket_dir())


# --- reading ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Event:
    id: int
    client_id: uuid.UUID
    type: str
    data: dict[str, Any]
    # Rendered SSE frames by audience, so a burst to many streams encodes each event once.
    frames: dict[str, str] = field(default_factory=dict)


def _rows(queryset: Any) -> list[Event]:
    return [Event(*row) for row in queryset.values_list("id", "client_id", "type", "data")]


def _closing(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run a read in a worker thread and give its connection back at once: streams wait for
    minutes, and a connection held per stream would exhaust the pool."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


def _head() -> int:
    return LiveEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def live_event_head() -> int:
    """The newest event id: a cursor from which a stream sends only what happens next."""
    return _head()


def _after(cursor: int, limit: int) -> list[Event]:
    return _rows(LiveEvent.objects.filter(id__gt=cursor).order_by("id")[:limit])


def _backlog(
    cursor: int, client_ids: frozenset[uuid.UUID] | None, types: frozenset[str] | None
) -> list[Event] | None:
    """Events after `cursor` for one subscriber, or None when the cursor is unknown: it was
    pruned, or never issued here. 0 means "everything still kept"."""
    if cursor and not LiveEvent.objects.filter(id=cursor).exists():
        return None
    queryset = LiveEvent.objects.filter(id__gt=cursor)
    if client_ids is not None:
        queryset = queryset.filter(client_id__in=client_ids)
    if types is not None:
        queryset = queryset.filter(type__in=types)
    return _rows(queryset.order_by("id")[:BATCH])


class Subscription:
    """One open stream's mailbox inside the hub."""

    def __init__(
        self, client_ids: frozenset[uuid.UUID] | None, types: frozenset[str] | None
    ) -> None:
        self.client_ids = client_ids
        self.types = types
        self.start_id = 0
        self._items: deque[Event] = deque()
        self._overflow = False
        self._ready = asyncio.Event()

    def push(self, event: Event) -> None:
        if self.types is not None and event.type not in self.types:
            return
        if len(self._items) >= MAX_PENDING:
            self._overflow = True
            self._items.clear()
        else:
            self._items.append(event)
        self._ready.set()

    async def next(self, timeout: float) -> list[Event] | None:
        """What arrived, [] after `timeout` with nothing, None when the stream must reread
        from the table because it fell behind."""
        if not self._items and not self._overflow:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        if self._overflow:
            self._overflow = False
            self._items.clear()
            return None
        items = list(self._items)
        self._items.clear()
        return items


class Hub:
    """This process's listener and fan-out."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._by_client: dict[uuid.UUID, set[Subscription]] = {}
        self._everyone: set[Subscription] = set()
        self._last_id: int | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._everyone) + sum(len(s) for s in self._by_client.values())

    def _start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            self.loop.create_task(self._listen(), name="live-listen"),
            self.loop.create_task(self._fan_out(), name="live-fan-out"),
        ]

    async def subscribe(
        self, *, client_ids: Iterable[uuid.UUID] | None, types: Iterable[str] | None
    ) -> Subscription:
        sub = Subscription(
            None if client_ids is None else frozenset(client_ids),
            None if types is None else frozenset(types),
        )
        if sub.client_ids is None:
            self._everyone.add(sub)
        else:
            for client_id in sub.client_ids:
                self._by_client.setdefault(client_id, set()).add(sub)
        self._start()
        try:
            # Listen first, then read the head: an event committed in between is announced.
            await self._listening.wait()
            async with self._lock:
                if self._last_id is None:
                    self._last_id = await _closing(_head)()
                sub.start_id = self._last_id
        except BaseException:  # a disconnect cancels us here too: leave nothing behind
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._everyone.discard(sub)
        for client_id in sub.client_ids or ():
            subs = self._by_client.get(client_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_client[client_id]

    def poke(self) -> None:
        self._wake.set()

    async def _fan_out(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SAFETY_POLL_SECONDS)
            self._wake.clear()
            async with self._lock:
                if not self.subscriber_count:
                    # Nobody to tell; the next subscriber reads the head afresh.
                    self._last_id = None
                    continue
                if self._last_id is None:
                    continue
                try:
                    events = await _closing(_after)(self._last_id, BATCH)
                except Exception:
                    log.exception("live events: reading new events failed")
                    await asyncio.sleep(1)
                    self._wake.set()
                    continue
                for event in events:
                    self._last_id = event.id
                    for sub in self._everyone:
                        sub.push(event)
                    for sub in self._by_client.get(event.client_id, ()):
                        sub.push(event)
                if len(events) == BATCH:
                    self._wake.set()

    async def _listen(self) -> None:
        while True:
            try:
                if settings.REDIS_URL:
                    await self._listen_redis()
                elif connection.vendor == "postgresql":
                    await self._listen_postgres()
                else:
                    await self._listen_datagram()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live events: listener lost, reconnecting", exc_info=True)
            self._listening.set()  # don't hold subscribers up: the safety poll covers us
            self.poke()
            await asyncio.sleep(1)

    async def _listen_postgres(self) -> None:
        import psycopg

        params = listen_connection_params()
        async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self._listening.set()
            self.poke()  # anything committed while we were not listening
            async for _ in conn.notifies():
                self._wake.set()

    async def _listen_redis(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                self._listening.set()
                self.poke()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake.set()
        finally:
            await client.aclose()

    async def _listen_datagram(self) -> None:
        directory = _socket_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{os.getpid()}-{id(self)}.sock"
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
            sock.setblocking(False)

            def readable() -> None:
                with contextlib.suppress(BlockingIOError):
                    while sock.recv(64):
                        pass  # many announcements, one look at the table
                self._wake.set()

            self.loop.add_reader(sock.fileno(), readable)
            self._listening.set()
            try:
                await asyncio.Future()  # until cancelled
            finally:
                self.loop.remove_reader(sock.fileno())
        finally:
            sock.close()
            path.unlink(missing_ok=True)


_hub: Hub | None = None


def hub() -> Hub:
    """This event loop's hub (a server process has one loop; tests may start several)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop:
        _hub = Hub()
    return _hub


# --- streams ----------------------------------------------------------------------------------


def sse_frame(*, event_id: int, type: str, data: Any) -> str:
    # JSON escapes newlines, so the payload is always one `data:` line.
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {type}\ndata: {payload}\n\n"


def parse_cursor(value: str | None) -> int | None:
    """A Last-Event-ID as sent by us (decimal digits, at most the largest event id a database
    holds), None when absent; ValidationFailed naming `Last-Event-ID` otherwise."""
    if value is None or value == "":
        return None
    try:
        return parse_whole(value, minimum=0, maximum=BIGINT_MAX)
    except Refused as error:
        raise refused("Last-Event-ID", error, value) from error


@dataclass
class StreamSpec:
    """What one stream may see and how it renders and re-checks itself."""

    client_ids: frozenset[uuid.UUID] | None
    types: frozenset[str] | None
    render: Callable[[Event], str]
    # Returns None while the stream may go on, else the reason to close it.
    still_valid: Callable[[], Awaitable[str | None]]
    expires_at: datetime | None = None


def _closed_frame(event_id: int, reason: str) -> str:
    return sse_frame(event_id=event_id, type="stream.closed", data={"reason": reason})


async def _catch_up(spec: StreamSpec, sent: int) -> AsyncIterator[Event | None]:
    """Every stored event after `sent` that `spec` may see, in order; a single None when
    `sent` is unknown (pruned, or never issued here)."""
    while True:
        backlog = await _closing(_backlog)(sent, spec.client_ids, spec.types)
        if backlog is None:
            yield None
            return
        for event in backlog:
            yield event
            sent = event.id
        if len(backlog) < BATCH:
            return


async def live_stream(spec: StreamSpec, *, cursor: int | None) -> AsyncIterator[str]:
    """The body of an SSE response: backlog after `cursor`, then events as they commit, a
    comment every 15 s, and a `stream.closed` event when the session ends."""
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
                    if event is None:
                        sent = max(sub.start_id, await _closing(_head)())
                        yield sse_frame(
                            event_id=sent, type="stream.reset", data={"reason": "cursor_expired"}
                        )
                        break
                    yield spec.render(event)
                    sent = event.id
            timeout = HEARTBEAT_SECONDS
            if spec.expires_at is not None:
                left = (spec.expires_at - timezone.now()).total_seconds()
                if left <= 0:
                    yield _closed_frame(sent, "session_expired")
                    return
                timeout = min(timeout, left)
            batch = await sub.next(timeout)
            if batch is None:
                reread = True
                continue
            chunk = "".join(spec.render(e) for e in batch if e.id > sent)
            if batch:
                sent = max(sent, batch[-1].id)
            yield chunk or ": keep-alive\n\n"
            if loop.time() >= next_check:
                next_check = loop.time() + REVALIDATE_SECONDS
                reason = await spec.still_valid()
                if reason is not None:
                    yield _closed_frame(sent, reason)
                    return
    finally:
        the_hub.unsubscribe(sub)


def staff_frame(event: Event) -> str:
    """Staff streams see every type, with the client named in the data."""
    frame = event.frames.get("staff")
    if frame is None:
        data = {"client_id": str(event.client_id), **event.data}
        frame = event.frames["staff"] = sse_frame(event_id=event.id, type=event.type, data=data)
    return frame


db_call = _closing


def stream_declined(request: HttpRequest) -> HttpResponse | None:
    """204 when a WSGI server runs the stream view, else None.

    A WSGI server would read the endless stream to its end and hold a thread forever (a proxy
    that sends the events path to the wrong process, or a test server). 204 is the SSE answer
    that tells EventSource not to reconnect: pages then stay as loaded.
    """
    return None if isinstance(request, ASGIRequest) else HttpResponse(status=204)


def sse_response(spec: StreamSpec, *, cursor: int | None) -> StreamingHttpResponse:
    response = StreamingHttpResponse(live_stream(spec, cursor=cursor), content_type=SSE_TYPE)
    response["Cache-Control"] = "no-cache"
    # nginx and similar proxies would otherwise hold events back in their buffers.
    response["X-Accel-Buffering"] = "no"
    return response
