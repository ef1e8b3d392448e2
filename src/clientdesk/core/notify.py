"""Wake-ups for workers: "there is due work" without polling the database.

PostgreSQL: `pg_notify` inside the writing transaction, delivered at commit to every listener on
any host. SQLite (one host): after commit, a datagram to each worker's socket under var/workers/.
Workers also wake on a timeout, so a lost wake-up delays work but never loses it.

A worker's LISTEN connection may be lost (the database restarted, the backend was terminated):
the waiter logs it, reconnects with backoff, and meanwhile the worker wakes on its timeout alone.
"""

import contextlib
import hashlib
import logging
import os
import select
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from clientdesk.core.backoff import Backoff
from clientdesk.core.postgres import listen_connection_params

log = logging.getLogger(__name__)

CHANNEL = "clientdesk_work"
CONNECT_TIMEOUT_SECONDS = 5


# A socket's path must fit `sockaddr_un.sun_path` (108 bytes on Linux, 104 on macOS), and the
# name a process binds is up to 32 characters ("{pid}-{id}.sock").
SOCKET_PATH_MAX = 100
SOCKET_NAME_MAX = 32


def socket_dir(name: str) -> Path:
    """The directory of the wake-up sockets called `name` of this installation: under var/, or,
    where var/ lies too deep for a socket's path, a directory of this user's in the system's
    temporary directory named for var/ (every process of one var/ finds the same one)."""
    directory = Path(settings.VAR_DIR) / name
    if len(os.fsencode(directory)) + 1 + SOCKET_NAME_MAX <= SOCKET_PATH_MAX:
        return directory
    digest = hashlib.sha256(os.fsencode(Path(settings.VAR_DIR).resolve())).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"clientdesk-{os.getuid()}-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    if short.stat().st_uid != os.getuid():
        raise PermissionError(f"{short} belongs to another user: wake-ups cannot use it")
    return short / name


def _socket_dir() -> Path:
    return socket_dir("workers")


def work_due() -> None:
    """Call inside the transaction that creates due work."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    else:
        transaction.on_commit(_poke_local_workers)


def datagram_poke(directory: Path) -> None:
    """One byte to every process listening on a socket in `directory` (SQLite's wake-up)."""
    if not directory.is_dir():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for path in directory.glob("*.sock"):
            try:
                sender.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)  # a process that died without cleaning up
            except BlockingIOError:
                pass  # its queue is full: it has wake-ups pending already


def _poke_local_workers() -> None:
    datagram_poke(_socket_dir())


class Waiter:
    """What a worker blocks on between batches: an announcement of work, or a `poke()` from
    one of its own threads (say, an attempt that finished)."""

    def __init__(self) -> None:
        self._poke_r, self._poke_w = os.pipe()
        os.set_blocking(self._poke_r, False)
        os.set_blocking(self._poke_w, False)

    def poke(self) -> None:
        """Wake `wait()` now, or at its next call. Safe from any thread."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._poke_w, b"!")

    def wait(self, timeout: float) -> bool:
        """Block until work is announced, a poke, or `timeout`; True unless the timeout."""
        raise NotImplementedError

    def _drain_pokes(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._poke_r, 512):
                pass

    def close(self) -> None:
        os.close(self._poke_r)
        os.close(self._poke_w)


class _PostgresWaiter(Waiter):
    """LISTENs on a connection of its own. When it cannot connect or loses the connection, it
    says so once, waits on pokes and the timeout alone, and reconnects with backoff; the first
    wait after reconnecting reports work, for an announcement may have been missed meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self._conn: Any = None
        self._retry_at = 0.0
        self._reconnect = Backoff()
        self._connect()

    def _connect(self) -> bool:
        import psycopg

        try:
            conn = psycopg.connect(
                **listen_connection_params(),
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
            )
            try:
                conn.execute(f"LISTEN {CHANNEL}")
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as error:
            self._lost(error)
            return False
        self._conn = conn
        self._reconnect.succeeded(log, "work announcements: listening again")
        return True

    def _lost(self, error: Exception) -> None:
        """Without a connection the worker wakes on its timeouts; reconnect after a backoff."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        delay = self._reconnect.failed(log, "work announcements: no LISTEN connection", error)
        self._retry_at = time.monotonic() + delay

    def wait(self, timeout: float) -> bool:
        import psycopg

        if self._conn is None:
            if time.monotonic() >= self._retry_at and self._connect():
                return True
            return self._wait_for_pokes(min(timeout, max(0.0, self._retry_at - time.monotonic())))
        try:
            # Announcements already read off the socket come first; then wait on both.
            if self._take_notifies():
                return True
            ready, _, _ = select.select([self._conn.fileno(), self._poke_r], [], [], timeout)
            if self._poke_r in ready:
                self._drain_pokes()
            return self._take_notifies() or bool(ready)
        except (psycopg.Error, OSError) as error:
            self._lost(error)
            return True  # look at the queue: nothing tells us what happened meanwhile

    def _wait_for_pokes(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._poke_r], [], [], timeout)
        if ready:
            self._drain_pokes()
        return bool(ready)

    def _take_notifies(self) -> bool:
        return bool(list(self._conn.notifies(timeout=0)))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        super().close()


class _SocketWaiter(Waiter):
    def __init__(self) -> None:
        super().__init__()
        directory = _socket_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"{os.getpid()}-{id(self)}.sock"
        self._path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self._path))
        self._sock.setblocking(False)

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._sock.fileno(), self._poke_r], [], [], timeout)
        if not ready:
            return False
        if self._poke_r in ready:
            self._drain_pokes()
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(64):
                pass  # drain: many wake-ups mean one look at the queue
        return True

    def close(self) -> None:
        self._sock.close()
        self._path.unlink(missing_ok=True)
        super().close()


@contextlib.contextmanager
def waiter() -> Iterator[Waiter]:
    w: Waiter = _PostgresWaiter() if connection.vendor == "postgresql" else _SocketWaiter()
    try:
        yield w
    finally:
        w.close()
