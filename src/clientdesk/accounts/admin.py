"""Admin for staff users, roles and API tokens; changes of roles and revocations go through the
services, which put them in the audit ledger."""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.services import (
    api_token_revoke,
    role_permissions_changed_record,
    user_roles_changed_record,
)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        user = form.instance
        before = sorted(user.groups.values_list("name", flat=True)) if change else []
        super().save_related(request, form, formsets, change)
        user_roles_changed_record(actor=request.user, user=user, before=before)  # type: ignore[arg-type]


admin.site.unregister(Group)


@admin.register(Group)
class RoleAdmin(GroupAdmin):
    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        group = form.instance
        before = sorted(
            f"{app}.{code}"
            for app, code in group.permissions.values_list("content_type__app_label", "codename")
        )
        super().save_related(request, form, formsets, change)
        role_permissions_changed_record(actor=request.user, group=group, before=before)  # type: ignore[arg-type]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tokens are issued by `manage.py create_api_token`, which shows the token once.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for token in queryset:
            api_token_revoke(token=token, actor=request.user)  # type: ignore[arg-type]
