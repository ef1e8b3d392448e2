"""Writes for accounts: issuing and revoking API tokens, and changes of a user's roles. Each is
in the audit ledger with the acting user (None: the system, e.g. a management command)."""

import hashlib
import secrets
from collections.abc import Iterable

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from clientdesk.accounts.models import ApiToken, User
from clientdesk.core.ledger import ledger_record

TOKEN_PREFIX = "cd_"  # noqa: S105 - a label, not a secret


def token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(
    *, user: User, name: str = "", actor: User | None = None
) -> tuple[ApiToken, str]:
    """Issue a token for `user`; returns the stored row and the token, which is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        row = ApiToken.objects.create(
            user=user, name=name, prefix=token[:10], digest=token_digest(token)
        )
        ledger_record(
            actor=actor,
            action="api_token.created",
            object_type="api_token",
            object_id=row.pk,
            data={"user_id": str(user.pk), "name": name, "prefix": row.prefix},
        )
    return row, token


def api_token_revoke(*, token: ApiToken, actor: User | None = None) -> ApiToken:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            ledger_record(
                actor=actor,
                action="api_token.revoked",
                object_type="api_token",
                object_id=token.pk,
                data={"user_id": str(token.user_id), "prefix": token.prefix},
            )
    return token


def user_roles_set(*, actor: User | None, user: User, roles: Iterable[str]) -> None:
    """Make `roles` (group names) exactly the user's roles."""
    with transaction.atomic():
        before = sorted(user.groups.values_list("name", flat=True))
        user.groups.set(Group.objects.filter(name__in=list(roles)))
        user_roles_changed_record(actor=actor, user=user, before=before)


def user_roles_changed_record(*, actor: User | None, user: User, before: list[str]) -> None:
    """Record the change of roles that just happened in this transaction (the admin's form
    saves the groups itself), if there was one."""
    after = sorted(user.groups.values_list("name", flat=True))
    if after != before:
        ledger_record(
            actor=actor,
            action="user.roles_changed",
            object_type="user",
            object_id=user.pk,
            data={"username": user.username, "before": before, "after": after},
        )


def role_permissions_changed_record(*, actor: User | None, group: Group, before: list[str]) -> None:
    after = sorted(
        f"{app}.{code}"
        for app, code in group.permissions.values_list("content_type__app_label", "codename")
    )
    if after != before:
        ledger_record(
            actor=actor,
            action="role.permissions_changed",
            object_type="role",
            object_id=group.pk,
            data={
                "role": group.name,
                "added": sorted(set(after) - set(before)),
                "removed": sorted(set(before) - set(after)),
            },
        )
