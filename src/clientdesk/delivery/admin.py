"""Read-only admin for deliveries and their attempts."""

from django.contrib import admin

from clientdesk.core.admin import ReadOnlyAdmin, ReadOnlyInline
from clientdesk.delivery.models import Delivery, DeliveryAttempt


class AttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    readonly_fields = ["number", "started_at", "duration_ms", "status_code", "error", "worker"]
    exclude = ["response_excerpt"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "channel", "client", "status", "attempt_count", "next_attempt_at"]
    list_filter = ["channel", "status"]
    inlines = [AttemptInline]
