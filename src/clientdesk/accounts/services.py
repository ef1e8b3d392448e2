"""Writes for accounts: issuing and revoking API tokens."""

import hashlib
import secrets

from django.utils import timezone

from clientdesk.accounts.models import ApiToken, User

TOKEN_PREFIX = "cd_"  # noqa: S105 - a label, not a secret


def token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Issue a token for `user`; returns the stored row and the token, which is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, prefix=token[:10], digest=token_digest(token)
    )
    return row, token


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
