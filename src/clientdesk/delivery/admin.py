"""Read-only admin for deliveries and their attempts."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clientdesk.core.admin import ReadOnlyAdmin
from clientdesk.delivery.models import Delivery, DeliveryAttempt


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "duration_ms", "status_code", "error", "worker"]
    exclude = ["response_excerpt"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "channel", "client", "status", "attempt_count", "next_attempt_at"]
    list_filter = ["channel", "status"]
    inlines = [AttemptInline]
