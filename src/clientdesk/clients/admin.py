"""Admin for clients."""

from django.contrib import admin

from clientdesk.clients.models import Client


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["full_name", "email", "phone", "language", "external_id", "created_at"]
    search_fields = ["external_id", "email", "last_name", "first_name"]
    readonly_fields = ["search_text", "sort_name", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        obj.refresh_derived()
        super().save_model(request, obj, form, change)
