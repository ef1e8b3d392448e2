"""Read-only admin for the timeline and the ledger: history is never edited."""

from django.contrib import admin

from clientdesk.audit.models import ActivityEvent, AuditRecord
from clientdesk.core.admin import ReadOnlyAdmin


@admin.register(ActivityEvent)
class ActivityEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "type", "actor_label", "client"]
    list_filter = ["type", "actor_type"]
    search_fields = ["client__external_id", "actor_label"]


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "created_at", "action", "actor_label", "object_type", "object_id"]
    list_filter = ["action"]
    search_fields = ["object_id", "actor_label"]
