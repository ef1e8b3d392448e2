"""What an API request needs to know about its caller, kept in process memory for a few seconds:
the user an API token names, and each user's permission set.

Every API request authenticates afresh, so without this each one reads its token, its user and
the user's permissions from the database. Entries live `AUTH_CACHE_SECONDS` (setting
`CLIENTDESK_AUTH_CACHE_SECONDS`, default 5; 0 turns the cache off).

Invalidation: any change to a token, a user, a role (group) or a permission, and any change of a
user's roles or permissions or a role's permissions (Django's `post_save`, `post_delete` and
`m2m_changed` signals, connected in `accounts/apps.py`) empties the whole cache of the process
that made it, at once and again when its transaction commits (so an entry read meanwhile from
the old rows does not survive). A generation number keeps a lookup that started before a change
from storing what it read after it. Other processes (the web server's other workers, the events
server) do not hear the signal: they refuse a revoked token or a removed permission once their
entry expires, within `AUTH_CACHE_SECONDS`. Changes made by a bulk `UPDATE` send no signal and
take effect the same way.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction

# A bound on the entries kept, whatever the number of tokens in use: past it the cache starts
# afresh (expired entries are otherwise dropped only when asked for).
MAX_ENTRIES = 10_000

_lock = threading.Lock()
_generation = 0


@dataclass(frozen=True)
class TokenEntry:
    token_id: Any
    user_fields: tuple[tuple[str, Any], ...]
    last_used_at: Any
    expires: float


@dataclass(frozen=True)
class PermissionsEntry:
    permissions: frozenset[str]
    expires: float


_tokens: dict[str, TokenEntry] = {}
_permissions: dict[Any, PermissionsEntry] = {}


def ttl() -> float:
    return float(settings.AUTH_CACHE_SECONDS)


def generation() -> int:
    """Read before a database lookup whose answer is to be stored: `*_store` drops it when the
    cache was emptied meanwhile."""
    return _generation


def forget_all() -> None:
    global _generation
    with _lock:
        _generation += 1
        _tokens.clear()
        _permissions.clear()


def changed(**kwargs: Any) -> None:
    """Signal receiver: something authentication or permissions read has changed."""
    forget_all()
    transaction.on_commit(forget_all, using=kwargs.get("using") or DEFAULT_DB_ALIAS)


def _fresh(entry: TokenEntry | PermissionsEntry | None) -> bool:
    return entry is not None and entry.expires > time.monotonic()


def token_get(digest: str) -> TokenEntry | None:
    entry = _tokens.get(digest)
    return entry if _fresh(entry) else None


def token_store(digest: str, entry: TokenEntry, *, since: int) -> None:
    with _lock:
        if since != _generation or ttl() <= 0:
            return
        if len(_tokens) >= MAX_ENTRIES:
            _tokens.clear()
        _tokens[digest] = entry


def permissions_get(user_id: Any) -> frozenset[str] | None:
    entry = _permissions.get(user_id)
    return entry.permissions if entry is not None and _fresh(entry) else None


def permissions_store(user_id: Any, permissions: frozenset[str], *, since: int) -> None:
    with _lock:
        if since != _generation or ttl() <= 0:
            return
        if len(_permissions) >= MAX_ENTRIES:
            _permissions.clear()
        _permissions[user_id] = PermissionsEntry(permissions, time.monotonic() + ttl())


def expiry() -> float:
    return time.monotonic() + ttl()
