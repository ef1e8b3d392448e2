"""Reads for accounts."""

from datetime import timedelta

from django.utils import timezone

from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.services import token_digest

_LAST_USED_RESOLUTION = timedelta(minutes=1)


def user_for_api_token(*, token: str) -> User | None:
    """The active user holding `token`, or None for an unknown, revoked or inactive one."""
    row = (
        ApiToken.objects.select_related("user")
        .filter(digest=token_digest(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if row is None:
        return None
    now = timezone.now()
    # Touch last_used_at at most once a minute, so reads don't turn every request into a write.
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user
