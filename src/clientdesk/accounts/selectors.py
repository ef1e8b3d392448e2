"""Reads for accounts."""

from dataclasses import replace
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from clientdesk.accounts import auth_cache
from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.services import token_digest

_LAST_USED_RESOLUTION = timedelta(minutes=1)
_USER_FIELDS = User._meta.concrete_fields


def user_for_api_token(*, token: str) -> User | None:
    """The active user holding `token`, or None for an unknown, revoked or inactive one.

    The answer comes from process memory for up to `AUTH_CACHE_SECONDS` (accounts/auth_cache.py:
    a revoke, a deactivation or a change of roles in this process empties it at once), as a
    fresh `User` each time; its permission set comes from the same cache (backends.py), so a
    request that finds both there reads nothing from the database to authenticate."""
    digest = token_digest(token)
    since = auth_cache.generation()
    entry = auth_cache.token_get(digest)
    if entry is None:
        row = (
            ApiToken.objects.select_related("user")
            .filter(digest=digest, revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if row is None:
            return None
        user = row.user
        fields = tuple((f.attname, getattr(user, f.attname)) for f in _USER_FIELDS)
        entry = auth_cache.TokenEntry(row.pk, fields, row.last_used_at, auth_cache.expiry())
        auth_cache.token_store(digest, entry, since=since)
    else:
        names, values = zip(*entry.user_fields, strict=True)
        user = User.from_db(DEFAULT_DB_ALIAS, list(names), list(values))
    now = timezone.now()
    # Touch last_used_at at most once a minute, so reads don't turn every request into a write.
    if entry.last_used_at is None or now - entry.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=entry.token_id).update(last_used_at=now)
        auth_cache.token_store(digest, replace(entry, last_used_at=now), since=since)
    return user
