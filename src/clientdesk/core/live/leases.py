"""Caps on open event streams, counted across every events process: a stream holds a lease
while it is open (`client:<id>` for a client's, `user:<id>` for a staff user's), and one more
than its holder's cap is refused (the views answer 429 with `Retry-After`).

Leases live in a table (`portal.StreamLease`, through the store the portal registers from
`AppConfig.ready()`), so every process sees every other's. Each event loop keeps one `Leases`:
it takes a lease in a short transaction before a stream starts, renews all of its leases with
one statement every `RENEW_SECONDS`, and gives a lease back as its stream ends (the stream only
marks it; the keeper deletes them in batches, so nothing awaits in a closing stream). A process
that dies without giving its leases back leaves them to lapse after `STREAM_LEASE_SECONDS`."""

import asyncio
import contextlib
import functools
import logging
import os
import uuid
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils import timezone

from clientdesk.core.backoff import one_line
from clientdesk.core.live.log import db_call

log = logging.getLogger(__name__)

# How long a lease counts without renewal (`CLIENTDESK_STREAM_LEASE_SECONDS`, default 60): the
# most a process that died keeps its streams counted. Renewed a third of that apart, or sooner.
LEASE_SECONDS = 60.0
RENEW_SECONDS = 20.0


def _lease_seconds() -> float:
    return float(getattr(settings, "STREAM_LEASE_SECONDS", LEASE_SECONDS))


def _renew_seconds() -> float:
    return min(RENEW_SECONDS, _lease_seconds() / 3)


# What a refused caller is told to wait: about as long as a browser takes to notice that a tab
# it closed let its stream go (the lease is given back at once then).
RETRY_AFTER_SECONDS = 10


class LeaseStore(Protocol):
    def acquire(
        self, *, holder: str, limit: int, owner: str, now: datetime, expires_at: datetime
    ) -> uuid.UUID | None:
        """A new lease for `holder`, or None when it already holds `limit` live ones."""

    def renew(self, *, owner: str, expires_at: datetime) -> None:
        """Every lease of `owner` now lapses at `expires_at`."""

    def release(self, *, ids: list[uuid.UUID]) -> None:
        """These leases end."""

    def count(self, *, holder: str, now: datetime) -> int:
        """The live leases of `holder`."""


_stores: dict[str, LeaseStore] = {}


def lease_store_register(store: LeaseStore) -> None:
    """Called once from an `AppConfig.ready()`; registering again replaces it."""
    _stores["store"] = store


def lease_store() -> LeaseStore:
    try:
        return _stores["store"]
    except KeyError:
        raise ImproperlyConfigured("No stream lease store is registered.") from None


class Leases:
    """An event loop's leases and the task that renews and gives them back."""

    def __init__(self) -> None:
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self._held: set[uuid.UUID] = set()
        self._released: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def held(self) -> int:
        return len(self._held)

    async def acquire(self, holder: str, limit: int) -> uuid.UUID | None:
        """A lease for one stream of `holder`, None when it holds `limit` already."""
        now = timezone.now()
        lease = await db_call(lease_store().acquire)(
            holder=holder,
            limit=limit,
            owner=self.owner,
            now=now,
            expires_at=now + timedelta(seconds=_lease_seconds()),
        )
        if lease is not None:
            self._held.add(lease)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(
                    self._keep(), name="stream-leases"
                )
        return lease

    def release(self, lease: uuid.UUID) -> None:
        """The stream of `lease` ended. Never waits: the keeper deletes it soon. Idempotent,
        and callable from any thread (a dropped response may be collected elsewhere)."""
        if lease not in self._held:
            return
        self._held.discard(lease)
        self._released.add(lease)
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nothing to renew
                self._loop.call_soon_threadsafe(self._wake.set)

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        next_renewal = loop.time() + _renew_seconds()
        while self._held or self._released:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_renewal - loop.time()))
            self._wake.clear()
            try:
                if self._released:
                    ids = list(self._released)
                    await db_call(lease_store().release)(ids=ids)
                    self._released.difference_update(ids)
                if loop.time() >= next_renewal:
                    next_renewal = loop.time() + _renew_seconds()
                    if self._held:
                        expires_at = timezone.now() + timedelta(seconds=_lease_seconds())
                        await db_call(lease_store().renew)(owner=self.owner, expires_at=expires_at)
            except DatabaseError as error:
                # The database is away: the leases lapse on their own if it stays away.
                log.warning("stream leases: not renewed (%s)", one_line(error))
                await asyncio.sleep(1.0)


@functools.lru_cache(maxsize=1)
def _leases_of(loop: asyncio.AbstractEventLoop) -> Leases:
    return Leases()


def leases() -> Leases:
    """The running event loop's leases (as `hub()`: one per loop)."""
    return _leases_of(asyncio.get_running_loop())
