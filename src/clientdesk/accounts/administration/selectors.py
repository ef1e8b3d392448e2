"""Reads for the Administration area."""

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.roles import ROLES
from clientdesk.core.permissions import AppPermission, all_permissions


def users_for_administration() -> QuerySet[User]:
    """Every staff user with their roles and whether they sign in with a second step."""
    return (
        User.objects.prefetch_related(Prefetch("groups", queryset=Group.objects.order_by("name")))
        .annotate(two_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)))
        .order_by("-is_active", "username")
    )


def tokens_for_administration(*, user: User | None = None) -> QuerySet[ApiToken]:
    tokens = ApiToken.objects.select_related("user").order_by("-created_at")
    return tokens.filter(user=user) if user is not None else tokens


@dataclass(frozen=True)
class PermissionRow:
    permission: AppPermission
    roles: frozenset[str]


def role_grants() -> list[PermissionRow]:
    """Each declared permission (the names shown in the UI) and the roles that hold it now."""
    held: dict[str, set[str]] = {}
    for name, app, code in Group.objects.filter(name__in=ROLES).values_list(
        "name", "permissions__content_type__app_label", "permissions__codename"
    ):
        if app and code:
            held.setdefault(f"{app}.{code}", set()).add(name)
    declared = sorted(set(all_permissions().values()), key=lambda p: (p.app_label, p.display_name))
    return [PermissionRow(permission=p, roles=frozenset(held.get(p.value, ()))) for p in declared]
