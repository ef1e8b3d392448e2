"""Read-only admin for deliveries and their attempts."""

from django.contrib import admin

from clientdesk.audit.admin import ReadOnlyAdmin
from clientdesk.delivery.models import Delivery, DeliveryAttempt


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "duration_ms", "status_code", "error", "worker"]
    exclude = ["response_excerpt"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "channel", "client", "status", "attempt_count", "next_attempt_at"]
    list_filter = ["channel", "status"]
    inlines = [AttemptInline]
