"""What every app's admin shares: read-only pages and inlines for history and evidence."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnly:
    """Viewable, never added, changed or deleted in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    """A read-only model page (no actions either: every one of them needs a change or delete)."""


class ReadOnlyInline(ReadOnly, admin.TabularInline):
    """Rows shown under their parent, read-only."""

    extra = 0
    can_delete = False
