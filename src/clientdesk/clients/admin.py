"""Admin for clients: adds and changes go through the services (search fields, ledger); a client
is deactivated, never deleted (messages, the timeline and the ledger name them)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.clients.services import EDITABLE_FIELDS, client_create, client_update


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["full_name", "email", "phone", "language", "external_id", "created_at"]
    search_fields = ["external_id", "email", "last_name", "first_name"]
    readonly_fields = ["search_text", "sort_name", "created_at", "updated_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        # A new client is active; deactivation is a change of an existing one, recorded as such.
        return ["is_active"] if obj is None else []

    def save_model(self, request: HttpRequest, obj: Client, form: Any, change: bool) -> None:
        actor = request.user
        assert isinstance(actor, User)  # the admin admits signed-in staff only
        if change:
            changes = {f: form.cleaned_data[f] for f in form.changed_data if f in EDITABLE_FIELDS}
            saved = client_update(actor=actor, client_id=obj.pk, changes=changes)
        else:
            fields = {f: getattr(obj, f) for f in EDITABLE_FIELDS if f != "is_active"}
            saved = client_create(actor=actor, **fields)
        obj.__dict__.update(saved.__dict__)
