"""Admin for staff users, roles, API tokens and login lockouts: every change goes through the
accounts services, which put it in the audit ledger with the acting administrator; what has no
such service is read-only (docs/ARCHITECTURE.md, "Every write in the ledger")."""

from typing import Any

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django_otp.plugins.otp_totp import admin as otp_totp_admin
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.services import (
    api_token_revoke,
    login_lockout_reset,
    role_create,
    role_permissions_changed_record,
    role_rename,
    user_change,
    user_create,
    user_editable_fields,
    user_password_changed_record,
    user_permission_names,
    user_permissions_changed_record,
    user_roles_changed_record,
)
from clientdesk.core.admin import ReadOnlyAdmin


def _actor(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # the admin admits signed-in staff only
    return request.user


def _adopt(obj: Any, saved: Any) -> None:
    """Let the admin go on (messages, redirects, related saves) with the object the service
    wrote."""
    obj.__dict__.update(saved.__dict__)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Users are deactivated, never deleted: their messages and ledger records name them."""

    readonly_fields = ("last_login", "date_joined")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        fields = user_editable_fields()
        if change:
            changes = {f: form.cleaned_data[f] for f in form.changed_data if f in fields}
            saved = user_change(actor=_actor(request), user_id=obj.pk, changes=changes)
        else:
            usable = form.cleaned_data.get("set_usable_password", True)
            saved = user_create(
                actor=_actor(request),
                username=obj.username,
                password=form.cleaned_data["password1"] if usable else None,
                **{f: getattr(obj, f) for f in fields if f != "username"},
            )
        _adopt(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        user = form.instance
        roles = sorted(user.groups.values_list("name", flat=True)) if change else []
        permissions = user_permission_names(user) if change else []
        super().save_related(request, form, formsets, change)
        user_roles_changed_record(actor=_actor(request), user=user, before=roles)
        user_permissions_changed_record(actor=_actor(request), user=user, before=permissions)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        """Django's password form writes the hash; the record joins it in one transaction."""
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            before = user.password if user else None
            response = super().user_change_password(request, id, form_url)
            if user is not None:
                user.refresh_from_db(fields=["password"])
                if user.password != before:
                    user_password_changed_record(actor=_actor(request), user=user)
        return response


admin.site.unregister(Group)


@admin.register(Group)
class RoleAdmin(GroupAdmin):
    """Roles are renamed and their permissions changed here, never deleted: a role's members
    would silently lose what it granted."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: bool) -> None:
        if change:
            saved = role_rename(actor=_actor(request), group_id=obj.pk, name=obj.name)
        else:
            saved = role_create(actor=_actor(request), name=obj.name)
        _adopt(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        group = form.instance
        before = sorted(
            f"{app}.{code}"
            for app, code in group.permissions.values_list("content_type__app_label", "codename")
        )
        super().save_related(request, form, formsets, change)
        role_permissions_changed_record(actor=_actor(request), group=group, before=before)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by `manage.py create_api_token` (which shows the token once) and
    revoked here; a token is never re-assigned, renamed or deleted, so its record stays true."""

    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_apitoken")

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token, actor=_actor(request))


for model in (AccessAttempt, AccessLog, AccessFailureLog):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

# Authenticators are managed on the profile page and in the Administration area, through the
# services that record them; django-otp's own admin pages would change them unrecorded.
assert otp_totp_admin  # imported first: it registers the model, undone here
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(AccessAttempt)
class LockoutAdmin(AccessAttemptAdmin):
    """Failed sign-ins: deleting them lifts a lockout, through `login_lockout_reset` (one
    ledger record each). Nothing else changes here."""

    actions: list[str] = []

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: AccessAttempt) -> None:
        login_lockout_reset(actor=_actor(request), attempt_ids=[obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        login_lockout_reset(
            actor=_actor(request), attempt_ids=list(queryset.values_list("pk", flat=True))
        )


@admin.register(AccessLog)
class SignInLogAdmin(ReadOnlyAdmin, AccessLogAdmin):
    """Who signed in and out, and from where: evidence, never edited."""


@admin.register(AccessFailureLog)
class FailedSignInLogAdmin(ReadOnlyAdmin, AccessFailureLogAdmin):
    """Every failed sign-in: evidence, never edited."""
