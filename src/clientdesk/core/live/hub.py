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
then skips ids it already sent, so nothing is lost or sent twice."""

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from clientdesk.core.live.log import BATCH, Event, db_call, events_after, live_event_head
from clientdesk.core.notify import datagram_poke
from clientdesk.core.postgres import listen_connection_params

log = logging.getLogger(__name__)

CHANNEL = "clientdesk_events"
SAFETY_POLL_SECONDS = 5.0
# A subscriber that falls further behind than this rereads from the table instead.
MAX_PENDING = 256


# --- announcing -------------------------------------------------------------------------------


def announce(event_id: int, vendor: str) -> None:
    """Tell every web process that events up to `event_id` are (about to be) committed; call it
    in the transaction that wrote them."""
    if settings.REDIS_URL:
        transaction.on_commit(lambda: _publish_redis(event_id))
    elif vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(event_id)])
    else:
        transaction.on_commit(_poke_web_processes)


@functools.cache
def _redis(url: str) -> Any:
    """One client per Redis URL, made on the first announcement."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=2)


def _publish_redis(event_id: int) -> None:
    import redis

    try:
        _redis(settings.REDIS_URL).publish(CHANNEL, str(event_id))
    except redis.RedisError:
        # The row is committed; streams find it on their next safety poll.
        log.warning("could not announce live event %s on Redis", event_id, exc_info=True)


def _socket_dir() -> Path:
    return Path(settings.VAR_DIR) / "events"


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
    """An event loop's listener and fan-out."""

    def __init__(self) -> None:
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
                    events = await db_call(events_after)(self._last_id)
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
            self._listening.set()
            try:
                await asyncio.Future()  # until cancelled
            finally:
                loop.remove_reader(sock.fileno())
        finally:
            sock.close()
            path.unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def _hub_of(loop: asyncio.AbstractEventLoop) -> Hub:
    return Hub()


def hub() -> Hub:
    """The running event loop's hub. A server process runs one loop; tests run several, one
    after another, and each gets a hub of its own."""
    return _hub_of(asyncio.get_running_loop())
