"""This process's hub: one listener for the announcements of new live events, which it reads once
and hands to every subscribed stream; the announcements are sent from here too.

Announcing (ids only, never the payload): PostgreSQL `pg_notify`, delivered at commit to every
process LISTENing on any host; Redis pub/sub after commit when `REDIS_URL` is set; on SQLite a
datagram after commit to each web process's socket under `var/events/` (the worker writes
delivery events from another process). A lost announcement only delays an event: the hub also
looks for new rows every few seconds while streams are open.

One `Hub` per event loop holds the listener and a high-water mark. When woken it reads the new
rows once and hands each to the matching subscriptions in memory, so a thousand open streams cost
one query per burst, and no stream holds a database connection while it waits. A stream
subscribes before it reads its backlog (as Zulip registers a queue before the initial fetch),
then skips ids it already sent, so nothing is lost or sent twice.

When the server is told to stop (SIGTERM, SIGINT) the hub closes: every open stream ends at once,
without an event, and its client reconnects to another process with `Last-Event-ID`. A server
waits for its open responses before it exits, so without this one browser tab would hold a
stopping server for as long as it stays open."""

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from clientdesk.core.backoff import Backoff, one_line
from clientdesk.core.live.log import BATCH, Event, db_call, events_after, live_event_head
from clientdesk.core.notify import datagram_poke, socket_dir
from clientdesk.core.postgres import listen_connection_params

log = logging.getLogger(__name__)

CHANNEL = "clientdesk_events"
SAFETY_POLL_SECONDS = 5.0
# How often the table is read while no listener hears announcements (Redis or database away).
LISTENER_AWAY_POLL_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5
# A subscriber that falls further behind than this rereads from the table instead.
MAX_PENDING = 256


# --- announcing -------------------------------------------------------------------------------


def announce(event_id: int, vendor: str) -> None:
    """Tell every web process that events up to `event_id` are (about to be) committed; call it
    in the transaction that wrote them."""
    if settings.REDIS_URL:
        transaction.on_commit(lambda: _publish_redis(event_id, vendor))
    elif vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(event_id)])
    else:
        transaction.on_commit(_poke_web_processes)


@functools.cache
def _redis(url: str) -> Any:
    """One client per Redis URL, made on the first announcement."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)


# After Redis failed, announcements skip it for a while (each would wait to fail again).
_publishing = Backoff()
_redis_skip_until = 0.0


def _publish_redis(event_id: int, vendor: str) -> None:
    """After commit. While Redis is away, the database's announcement stands in: the hubs that
    lost Redis listen there meanwhile (`Hub._listen`)."""
    import redis

    global _redis_skip_until
    if time.monotonic() >= _redis_skip_until:
        try:
            _redis(settings.REDIS_URL).publish(CHANNEL, str(event_id))
        except redis.RedisError as error:
            delay = _publishing.failed(log, "live events: Redis takes no announcement", error)
            _redis_skip_until = time.monotonic() + delay
        else:
            _publishing.succeeded(log, "live events: Redis takes announcements again")
            return
    _announce_on_database(event_id, vendor)


def _announce_on_database(event_id: int, vendor: str) -> None:
    if vendor != "postgresql":
        _poke_web_processes()
        return
    try:
        with connection.cursor() as cursor:  # after commit: autocommit, delivered at once
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(event_id)])
    except DatabaseError as error:
        # The row is committed; streams find it on their hub's next safety poll.
        log.warning("live events: could not announce %s (%s)", event_id, one_line(error))


def _socket_dir() -> Path:
    return socket_dir("events")


def _poke_web_processes() -> None:
    datagram_poke(_socket_dir())


# --- hearing ----------------------------------------------------------------------------------


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
        self.ended = False

    def end(self) -> None:
        """The hub closed: `next()` returns at once, and the stream ends."""
        self.ended = True
        self._ready.set()

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
        from the table because it fell behind. Returns [] at once once `ended`."""
        if not self._items and not self._overflow and not self.ended:
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
    """An event loop's listener and fan-out."""

    def __init__(self) -> None:
        self._by_client: dict[uuid.UUID, set[Subscription]] = {}
        self._everyone: set[Subscription] = set()
        self._last_id: int | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False
        # Whether the listener hears announcements now (else the table is polled more often).
        self._heard = False

    @property
    def subscriber_count(self) -> int:
        return len(self._everyone) + sum(len(s) for s in self._by_client.values())

    def _start(self) -> None:
        if self._tasks or self.closed:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="live-listen"),
            loop.create_task(self._fan_out(), name="live-fan-out"),
        ]

    async def subscribe(
        self, *, client_ids: Iterable[uuid.UUID] | None, types: Iterable[str] | None
    ) -> Subscription:
        sub = Subscription(
            None if client_ids is None else frozenset(client_ids),
            None if types is None else frozenset(types),
        )
        if self.closed:
            sub.end()
            return sub
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
                    self._last_id = await db_call(live_event_head)()
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

    def close(self) -> None:
        """The server stops: end every open stream and any that opens from now on, and let go
        of the listener's connection. Idempotent."""
        if not self.closed:
            log.info("live events: server stopping, ending %d streams", self.subscriber_count)
        self.closed = True
        for sub in [*self._everyone, *(s for subs in self._by_client.values() for s in subs)]:
            sub.end()
        self._listening.set()  # a subscriber still waiting for the listener goes on, and ends
        for task in self._tasks:
            task.cancel()

    async def _fan_out(self) -> None:
        failing = Backoff()
        while True:
            # While the listener is away, the table is read more often: nothing announces.
            poll = SAFETY_POLL_SECONDS if self._heard else LISTENER_AWAY_POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)
            self._wake.clear()
            async with self._lock:
                if not self.subscriber_count:
                    # Nobody to tell; the next subscriber reads the head afresh.
                    self._last_id = None
                    continue
                if self._last_id is None:
                    continue
                try:
                    events = await db_call(events_after)(self._last_id)
                except Exception as error:  # the database is away: its streams wait with us
                    delay = failing.failed(log, "live events: reading new events failed", error)
                    await asyncio.sleep(delay)
                    self._wake.set()
                    continue
                failing.succeeded(log, "live events: reading new events again")
                for event in events:
                    self._last_id = event.id
                    for sub in self._everyone:
                        sub.push(event)
                    for sub in self._by_client.get(event.client_id, ()):
                        sub.push(event)
                if len(events) == BATCH:
                    self._wake.set()

    async def _listen(self) -> None:
        """Hear announcements for as long as the loop runs: on Redis when it is configured, else
        on the database (PostgreSQL LISTEN, SQLite datagrams). A lost listener is logged and
        reconnected with backoff; while Redis is away the database's announcements stand in
        (announcers fall back to them too), and the table is polled every second meanwhile."""
        lost = Backoff()
        while True:
            try:
                if settings.REDIS_URL:
                    try:
                        await self._listen_redis(lost)
                    except Exception as error:
                        delay = lost.failed(log, "live events: Redis listener lost", error)
                        self._heard = False
                        self._listening.set()
                        self.poke()
                        # The database's announcements until Redis is tried again.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._listen_database(), delay)
                        continue
                else:
                    await self._listen_database(lost)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = lost.failed(log, "live events: listener lost", error)
                self._heard = False
                self._listening.set()  # don't hold subscribers up: polling covers us
                self.poke()
                await asyncio.sleep(delay)

    async def _listen_database(self, lost: "Backoff | None" = None) -> None:
        if connection.vendor == "postgresql":
            await self._listen_postgres(lost)
        else:
            await self._listen_datagram()

    def _now_listening(self, lost: "Backoff | None") -> None:
        self._heard = True
        self._listening.set()
        self.poke()  # anything committed while we were not listening
        if lost is not None:
            lost.succeeded(log, "live events: listening again")

    async def _listen_postgres(self, lost: "Backoff | None") -> None:
        import psycopg

        params = listen_connection_params()
        async with await psycopg.AsyncConnection.connect(
            **params, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        ) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self._now_listening(lost)
            async for _ in conn.notifies():
                self._wake.set()
        raise ConnectionError("the LISTEN connection closed")

    async def _listen_redis(self, lost: "Backoff") -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                self._now_listening(lost)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake.set()
        finally:
            await client.aclose()
        raise ConnectionError("Redis ended the subscription")

    async def _listen_datagram(self) -> None:
        directory = _socket_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{os.getpid()}-{id(self)}.sock"
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        try:
            sock.bind(str(path))
            sock.setblocking(False)

            def readable() -> None:
                with contextlib.suppress(BlockingIOError):
                    while sock.recv(64):
                        pass  # many announcements, one look at the table
                self._wake.set()

            loop.add_reader(sock.fileno(), readable)
            self._heard = True
            self._listening.set()
            try:
                await asyncio.Future()  # until cancelled
            finally:
                loop.remove_reader(sock.fileno())
        finally:
            sock.close()
            path.unlink(missing_ok=True)


# --- stopping -----------------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def close_on_stop_signals() -> bool:
    """End this event loop's streams as soon as the process is told to stop. Call it on the
    server's loop in its main thread (the ASGI lifespan's startup); False elsewhere.

    The server's own handler stays: ours runs first and then calls it, so the server still
    stops as it would (granian and uvicorn wait for open responses, which now end). A signal
    with no Python handler (the default kills the process, streams and all) is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return False
    loop = asyncio.get_running_loop()
    chained = False
    for number in STOP_SIGNALS:
        previous = signal.getsignal(number)
        if not callable(previous):
            continue

        def stop(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(lambda: hub().close())
            previous(signum, frame)

        signal.signal(number, stop)
        chained = True
    return chained


@functools.lru_cache(maxsize=1)
def _hub_of(loop: asyncio.AbstractEventLoop) -> Hub:
    return Hub()


def hub() -> Hub:
    """The running event loop's hub. A server process runs one loop; tests run several, one
    after another, and each gets a hub of its own."""
    return _hub_of(asyncio.get_running_loop())
