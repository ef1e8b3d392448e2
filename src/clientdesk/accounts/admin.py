"""Admin for staff users and API tokens."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from clientdesk.accounts.models import ApiToken, User


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    pass


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]
    search_fields = ["user__username", "name", "prefix"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        # Tokens are issued by `manage.py create_api_token`, which shows the token once.
        return False
