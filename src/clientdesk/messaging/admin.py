"""Admin for messages (read-only: what was sent stays as sent) and templates (renamed,
(de)activated and their reply default set through `template_change`, which records each change;
never added or deleted here: the Templates page versions them, and sent messages name them)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from clientdesk.accounts.models import User
from clientdesk.core.admin import ReadOnlyAdmin, ReadOnlyInline
from clientdesk.core.errors import ApplicationError
from clientdesk.messaging.models import Message, MessageTemplate, MessageTemplateVersion
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.services.templates import (
    Rename,
    SetActive,
    SetExpectsReply,
    TemplateAction,
    template_change,
)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "client", "sender", "direction", "template", "template_version"]
    list_filter = ["direction"]
    search_fields = ["client__external_id", "sender__username"]


class VersionInline(ReadOnlyInline):
    model = MessageTemplateVersion
    readonly_fields = ["version", "default_language", "variants", "author", "created_at"]


class TemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["name", "is_active", "expects_reply"]

    def clean_name(self) -> str:
        """The service's own check (length, case-insensitive uniqueness), as a form error."""
        try:
            return Rename(self.cleaned_data["name"]).check(template_id=self.instance.pk).name
        except ApplicationError as error:
            raise forms.ValidationError(error.detail) from error


_ACTIONS: dict[str, type[Rename] | type[SetActive] | type[SetExpectsReply]] = {
    "name": Rename,
    "is_active": SetActive,
    "expects_reply": SetExpectsReply,
}


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ["name", "is_active", "created_by", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [VersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The service asks for this permission, whatever the admin's model permissions say.
        return super().has_change_permission(request, obj) and request.user.has_perm(
            MessagingPermission.MANAGE_TEMPLATES
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: MessageTemplate, form: Any, change: bool
    ) -> None:
        author = request.user
        assert isinstance(author, User)  # the admin admits signed-in staff only
        actions: list[TemplateAction] = [
            _ACTIONS[field](form.cleaned_data[field])
            for field in form.changed_data
            if field in _ACTIONS
        ]
        if actions:
            current = template_change(author=author, template_id=obj.pk, actions=actions)
            obj.__dict__.update(current.template.__dict__)
