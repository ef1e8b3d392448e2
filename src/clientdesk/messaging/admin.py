"""Admin for messages (read-only: what was sent stays as sent) and templates."""

from django.contrib import admin

from clientdesk.audit.admin import ReadOnlyAdmin
from clientdesk.messaging.models import Message, MessageTemplate, MessageTemplateVersion


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "client", "sender", "direction", "template", "template_version"]
    list_filter = ["direction"]
    search_fields = ["client__external_id", "sender__username"]


class VersionInline(admin.TabularInline):
    model = MessageTemplateVersion
    extra = 0
    can_delete = False
    readonly_fields = ["version", "default_language", "variants", "author", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "created_by", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [VersionInline]

    def has_add_permission(self, request):
        # Templates are made on the Templates page or the API, which version and audit them.
        return False
