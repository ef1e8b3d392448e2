"""Writes for accounts: staff users (created, changed, their password, roles and own
permissions), roles, API tokens and login lockouts. Each is in the audit ledger with the acting
user (None: the system, e.g. a management command)."""

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
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


# --- The Administration area: invitations, deactivation, sessions ------------------------------


def user_sessions_end(*, actor: User | None, user: User, keep: str | None = None) -> int:
    """End every signed-in session of `user` (but `keep`, a session key): their browsers are
    signed out at their next request. Sessions live in the database (Django's default engine);
    each live one is read to find its user. Returns how many ended; records it when any did."""
    from django.contrib.auth import SESSION_KEY
    from django.contrib.sessions.models import Session

    ended = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if session.get_decoded().get(SESSION_KEY) == str(user.pk) and session.pk != keep
    ]
    if ended:
        with transaction.atomic():
            Session.objects.filter(pk__in=ended).delete()
            ledger_record(
                actor=actor,
                action="user.sessions_ended",
                object_type="user",
                object_id=user.pk,
                data={"username": user.username, "sessions": len(ended)},
            )
    return len(ended)


def user_deactivate(*, actor: User, user_id: uuid.UUID) -> User:
    """Deactivate a staff user: they cannot sign in, their sessions end and every API token of
    theirs is revoked, at once. An administrator cannot deactivate themself."""
    if actor.pk == user_id:
        raise ValidationFailed("You cannot deactivate yourself: ask another administrator.")
    with transaction.atomic():
        user = user_change(actor=actor, user_id=user_id, changes={"is_active": False})
        for token in ApiToken.objects.filter(user_id=user.pk, revoked_at__isnull=True):
            api_token_revoke(token=token, actor=actor)
        user_sessions_end(actor=actor, user=user)
    return user


def user_reactivate(*, actor: User, user_id: uuid.UUID) -> User:
    """Let a deactivated user sign in again; their old sessions and tokens stay ended."""
    return user_change(actor=actor, user_id=user_id, changes={"is_active": True})


def user_roles_change(*, actor: User, user_id: uuid.UUID, roles: Iterable[str]) -> User:
    """Make `roles` exactly the user's roles, from the roles of the contract only. An
    administrator cannot take the Administrator role from themself."""
    from clientdesk.accounts.roles import ROLES, Role

    wanted = sorted(set(roles))
    unknown = [role for role in wanted if role not in ROLES]
    if unknown:
        raise ValidationFailed("Choose roles from the list.", errors={"roles": ["Unknown role."]})
    if actor.pk == user_id and Role.ADMINISTRATOR not in wanted:
        raise ValidationFailed(
            "You cannot take the Administrator role from yourself: ask another administrator."
        )
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        user_roles_set(actor=actor, user=user, roles=wanted)
    return user


def user_invite(
    *,
    actor: User,
    email: str,
    first_name: str,
    last_name: str,
    roles: Iterable[str],
    username: str = "",
) -> User:
    """A new staff user who has no password yet: they set one from the invitation e-mail
    (`user_invitation_send`). The username is the e-mail address unless one is given."""
    from django.core.validators import EmailValidator

    from clientdesk.accounts.roles import ROLES

    email = email.strip()
    username = username.strip() or email
    errors: dict[str, list[str]] = {}
    if len(email) > 254:
        errors["email"] = ["At most 254 characters."]
    else:
        try:
            EmailValidator()(email)
        except Exception:
            errors["email"] = ["Enter a valid e-mail address."]
    if "email" not in errors and User.objects.filter(email__iexact=email).exists():
        errors["email"] = ["A staff user already has this e-mail address."]
    if len(username) > 150:
        errors["username"] = ["At most 150 characters."]
    else:
        try:
            User.username_validator(username)
        except Exception:
            errors["username"] = ["Letters, digits and @ . + - _ only."]
    if "username" not in errors and User.objects.filter(username__iexact=username).exists():
        errors["username"] = ["This username is taken."]
    for field, value in (("first_name", first_name), ("last_name", last_name)):
        if len(value) > 150:
            errors[field] = ["At most 150 characters."]
    wanted = sorted(set(roles))
    if any(role not in ROLES for role in wanted):
        errors["roles"] = ["Unknown role."]
    if errors:
        raise ValidationFailed("The invitation was not sent: check the fields.", errors=errors)
    with transaction.atomic():
        user = user_create(
            actor=actor,
            username=username,
            password=None,
            email=email,
            first_name=first_name.strip(),
            last_name=last_name.strip(),
        )
        user_roles_set(actor=actor, user=user, roles=wanted)
    return user


def user_invitation_send(*, actor: User, user_id: uuid.UUID, base_url: str) -> User:
    """E-mail the user a link to set their password (Django's password-reset token: valid
    `CLIENTDESK_INVITATION_HOURS`, and for one use, since setting the password changes what the
    token signs). Only for an active user who has never signed in and has no password."""
    from django.conf import settings
    from django.core.mail import send_mail
    from django.urls import reverse
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from clientdesk.accounts.invitations import invitation_tokens

    user = User.objects.get(pk=user_id)
    if not user.is_active or user.has_usable_password() or user.last_login is not None:
        raise ValidationFailed(
            "Only an active user who has not set a password yet can be sent an invitation."
        )
    if not user.email:
        raise ValidationFailed("This user has no e-mail address.")
    path = reverse(
        "invitation-accept",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": invitation_tokens.make_token(user),
        },
    )
    hours = settings.CLIENTDESK_INVITATION_HOURS
    valid_until = timezone.now() + timedelta(hours=hours)
    business = settings.BUSINESS_NAME
    body = (
        f"Hello {user.first_name or user.username},\n\n"
        f"{actor.display_name} invited you to {business} on Clientdesk.\n"
        f"Your username is: {user.username}\n\n"
        f"Set your password here (the link works once, for {hours} hours):\n"
        f"{base_url.rstrip('/')}{path}\n\n"
        "If you did not expect this e-mail, you can ignore it.\n"
    )
    send_mail(
        f"You are invited to {business}",
        body,
        settings.DEFAULT_FROM_EMAIL,
        [user.email],
    )
    with transaction.atomic():
        ledger_record(
            actor=actor,
            action="user.invited",
            object_type="user",
            object_id=user.pk,
            data={
                "username": user.username,
                "email": user.email,
                "valid_until": valid_until.isoformat(),
            },
        )
    return user


def user_password_set(*, user: User, password: str) -> User:
    """The user sets their own password (from an invitation link); recorded with them as the
    actor. `password` was checked against the password validators by the form."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        user.set_password(password)
        user.save(update_fields=["password"])
        user_password_changed_record(actor=user, user=user)
    return user


# --- Two-factor sign-in ------------------------------------------------------------------------


def _recovery_codes_make(user: User) -> list[str]:
    from clientdesk.accounts.models import RecoveryCode
    from clientdesk.accounts.two_factor import (
        RECOVERY_CODE_COUNT,
        recovery_code_digest,
        recovery_code_new,
    )

    RecoveryCode.objects.filter(user=user).delete()
    codes = [recovery_code_new() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(user=user, digest=recovery_code_digest(code)) for code in codes]
    )
    return codes


def two_factor_enable(*, user: User, key: str, code: str) -> tuple[Any, list[str]]:
    """Turn on two-factor sign-in with the secret the user's app holds (`key`, hex), proven by
    a current `code` from it; returns the device and the recovery codes, shown once (only their
    SHA-256 is stored). The code is spent: it cannot be used to sign in."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from clientdesk.accounts.two_factor import totp_code_or_none, totp_for

    totp = totp_for(key)
    digits = totp_code_or_none(code)
    if digits is None or not totp.verify(int(digits), tolerance=1):
        raise ValidationFailed(
            "That code does not match: enter the 6-digit code your app shows now.",
            errors={"code": ["Wrong code."]},
        )
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)  # one enrolment at a time
        if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise ValidationFailed("Two-factor sign-in is already on.")
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(
            user=user, name="Authenticator app", key=key, confirmed=True, last_t=totp.t()
        )
        codes = _recovery_codes_make(user)
        ledger_record(
            actor=user,
            action="user.two_factor_enabled",
            object_type="user",
            object_id=user.pk,
            data={"username": user.username, "recovery_codes": len(codes)},
        )
    return device, codes


def two_factor_verify(*, user: User, code: str) -> tuple[Any, bool] | None:
    """Check a second-step code: a current code from the app (each used once: a code at or
    before the last accepted time step is refused, and failures slow further tries), or an
    unused recovery code (then spent, and recorded). Returns (the device, whether a recovery
    code was used), or None when the code is wrong."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from clientdesk.accounts.models import RecoveryCode
    from clientdesk.accounts.two_factor import (
        recovery_code_digest,
        recovery_code_or_none,
        totp_code_or_none,
    )

    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        if device is None:
            return None
        digits = totp_code_or_none(code)
        if digits is not None:
            return (device, False) if device.verify_token(digits) else None
        recovery = recovery_code_or_none(code)
        if recovery is None:
            device.throttle_increment(commit=True)
            return None
        spent = RecoveryCode.objects.filter(
            user=user, digest=recovery_code_digest(recovery), used_at__isnull=True
        ).update(used_at=timezone.now())
        if not spent:
            device.throttle_increment(commit=True)
            return None
        left = RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
        ledger_record(
            actor=user,
            action="user.recovery_code_used",
            object_type="user",
            object_id=user.pk,
            data={"username": user.username, "left": left},
        )
    return device, True


def two_factor_disable(*, actor: User | None, user: User) -> None:
    """Turn two-factor sign-in off: the authenticator and every recovery code are forgotten.
    The user does it from their profile with a current code; an administrator, for someone who
    lost their device, from the Administration area."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from clientdesk.accounts.models import RecoveryCode

    with transaction.atomic():
        removed, _ = TOTPDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        if removed:
            ledger_record(
                actor=actor,
                action="user.two_factor_disabled",
                object_type="user",
                object_id=user.pk,
                data={"username": user.username},
            )


def recovery_codes_renew(*, user: User) -> list[str]:
    """New recovery codes for an enrolled user; the old ones stop working."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    with transaction.atomic():
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise ValidationFailed("Turn on two-factor sign-in first.")
        codes = _recovery_codes_make(user)
        ledger_record(
            actor=user,
            action="user.recovery_codes_renewed",
            object_type="user",
            object_id=user.pk,
            data={"username": user.username, "recovery_codes": len(codes)},
        )
    return codes
