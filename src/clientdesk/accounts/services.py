"""Writes for accounts: staff users (created, changed, their password, roles and own
permissions), roles, API tokens and login lockouts. Each is in the audit ledger with the acting
user (None: the system, e.g. a management command)."""

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from clientdesk.accounts.models import ApiToken, User
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.ledger import ledger_record
from clientdesk.core.zones import zone_or_none

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


# Kept by Django or by their own service: the password (`user_password_set`), the dates, the id.
_USER_NOT_EDITABLE = {"id", "password", "last_login", "date_joined"}


def user_editable_fields() -> list[str]:
    """The fields of a user an administrator sets directly: every plain field of the model but
    those Django keeps, so a field added to `User` is recorded without touching this file."""
    return [
        field.name
        for field in User._meta.concrete_fields
        if field.editable and not field.is_relation and field.name not in _USER_NOT_EDITABLE
    ]


def _user_state(user: User, fields: Iterable[str]) -> dict[str, Any]:
    return {field: getattr(user, field) for field in fields}


def user_create(*, actor: User | None, username: str, password: str | None, **fields: Any) -> User:
    """A new staff user; `password` None makes one who cannot sign in with a password."""
    unknown = set(fields) - set(user_editable_fields())
    if unknown:
        raise ValidationFailed(f"These fields cannot be set: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        user = User(username=username, **fields)
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save(force_insert=True)
        ledger_record(
            actor=actor,
            action="user.created",
            object_type="user",
            object_id=user.pk,
            data={**_user_state(user, user_editable_fields()), "password": password is not None},
        )
    return user


def user_change(*, actor: User | None, user_id: uuid.UUID, changes: Mapping[str, Any]) -> User:
    """Change the given fields (`is_active`, `is_staff`, `is_superuser` among them); records
    the before and after of what really changed."""
    unknown = set(changes) - set(user_editable_fields())
    if unknown:
        raise ValidationFailed(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        before = _user_state(user, changes)
        changed = {field: value for field, value in changes.items() if before[field] != value}
        if changed:
            for field, value in changed.items():
                setattr(user, field, value)
            user.save(update_fields=list(changed))
            ledger_record(
                actor=actor,
                action="user.changed",
                object_type="user",
                object_id=user.pk,
                data={
                    "username": user.username,
                    "before": {field: before[field] for field in changed},
                    "after": changed,
                },
            )
    return user


def user_password_changed_record(*, actor: User | None, user: User) -> None:
    """Record the password change (or the disabling of password sign-in) that just happened
    in this transaction; the admin's password form writes the hash itself. Never the hash."""
    ledger_record(
        actor=actor,
        action="user.password_changed",
        object_type="user",
        object_id=user.pk,
        data={"username": user.username, "usable": user.has_usable_password()},
    )


def user_permission_names(user: User) -> list[str]:
    """The permissions granted to the user directly (not through a role), as app.codename."""
    return sorted(
        f"{app}.{code}"
        for app, code in user.user_permissions.values_list("content_type__app_label", "codename")
    )


def user_permissions_changed_record(*, actor: User | None, user: User, before: list[str]) -> None:
    """Record the change of the user's own permissions that just happened in this transaction
    (the admin's form saves them itself), if there was one."""
    after = user_permission_names(user)
    if after != before:
        ledger_record(
            actor=actor,
            action="user.permissions_changed",
            object_type="user",
            object_id=user.pk,
            data={
                "username": user.username,
                "added": sorted(set(after) - set(before)),
                "removed": sorted(set(before) - set(after)),
            },
        )


def role_create(*, actor: User | None, name: str) -> Group:
    """A new role without permissions; they are granted next (`role_permissions_changed_record`)."""
    with transaction.atomic():
        group = Group.objects.create(name=name)
        ledger_record(
            actor=actor,
            action="role.created",
            object_type="role",
            object_id=group.pk,
            data={"role": name},
        )
    return group


def role_rename(*, actor: User | None, group_id: int, name: str) -> Group:
    with transaction.atomic():
        group = Group.objects.select_for_update().get(pk=group_id)
        if group.name != name:
            before, group.name = group.name, name
            group.save(update_fields=["name"])
            ledger_record(
                actor=actor,
                action="role.renamed",
                object_type="role",
                object_id=group.pk,
                data={"before": before, "after": name},
            )
    return group


def login_lockout_reset(*, actor: User | None, attempt_ids: Iterable[Any]) -> int:
    """Forget failed sign-ins, which lifts a lockout; one ledger record per forgotten row, with
    whose and from where. Returns how many were forgotten."""
    with transaction.atomic():
        attempts = list(AccessAttempt.objects.select_for_update().filter(pk__in=list(attempt_ids)))
        for attempt in attempts:
            ledger_record(
                actor=actor,
                action="login.lockout_reset",
                object_type="access_attempt",
                object_id=attempt.pk,
                data={
                    "username": attempt.username,
                    "ip_address": attempt.ip_address,
                    "failures": attempt.failures_since_start,
                },
            )
        AccessAttempt.objects.filter(pk__in=[a.pk for a in attempts]).delete()
    return len(attempts)


def user_timezone_set(*, user: User, zone: str) -> User:
    """The time zone the staff pages show `user` times in: an IANA name, or "" for their
    browser's. Their own choice, recorded like every change of a user (`user.changed`, with
    themselves as the actor), so the ledger also says in which zone someone read a due time."""
    if zone and zone_or_none(zone) is None:
        raise ValidationFailed(
            "Choose a time zone from the list (an IANA name such as Europe/Berlin).",
            errors={"timezone": ["Unknown time zone."]},
        )
    return user_change(actor=user, user_id=user.pk, changes={"timezone": zone})
