"""Reads for messaging."""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.errors import NotFound, PermissionDenied
from clientdesk.delivery.models import Delivery
from clientdesk.files.models import StoredFile
from clientdesk.messaging.models import (
    BroadcastFile,
    DocumentRequest,
    Message,
    MessageAttachment,
    MessageTemplate,
    MessageTemplateVersion,
)
from clientdesk.messaging.permissions import READ_TEMPLATES, MessagingPermission


def check_can_view(user: User) -> None:
    if not user.has_perm(MessagingPermission.VIEW_MESSAGE):
        raise PermissionDenied("You need the 'Can view message' permission to read messages.")


def client_messages(*, user: User, client: Client) -> QuerySet[Message]:
    check_can_view(user)
    return (
        Message.objects.filter(client=client)
        .select_related("sender", "client")
        .order_by("-created_at", "-id")
    )


def message_get(*, user: User, message_id: uuid.UUID) -> Message:
    check_can_view(user)
    try:
        return Message.objects.select_related("sender", "client").get(pk=message_id)
    except Message.DoesNotExist as error:
        raise NotFound("No such message.") from error


def template_get(*, template_id: uuid.UUID | str) -> MessageTemplate:
    """A template by id; `template_id` may be text as a form or body sent it (not found unless
    it is a UUID)."""
    try:
        return MessageTemplate.objects.get(pk=template_id)
    except (MessageTemplate.DoesNotExist, ValidationError, ValueError, TypeError) as error:
        raise NotFound("No such template.") from error


def template_current_version(*, template: MessageTemplate) -> MessageTemplateVersion:
    version = template.versions.order_by("-version").first()
    if version is None:  # every template is created with its first version
        raise NotFound(f"The template {template.name!r} has no versions.")
    return version


def template_search(*, query: str = "", active_only: bool = False) -> QuerySet[MessageTemplate]:
    templates = MessageTemplate.objects.all()
    if query:
        templates = templates.filter(name__icontains=query.strip()[:120])
    if active_only:
        templates = templates.filter(is_active=True)
    return templates.order_by("name")


def check_can_read_templates(user: User) -> None:
    if not any(user.has_perm(perm) for perm in READ_TEMPLATES):
        raise PermissionDenied(
            "You need the 'Send a private message' or 'Manage message templates' permission "
            "to read message templates."
        )


def templates_readable(
    *, user: User, query: str = "", with_inactive: bool = False
) -> QuerySet[MessageTemplate]:
    """The templates `user` may read (READ_TEMPLATES): the active ones, and for template
    managers who ask, the inactive ones too."""
    check_can_read_templates(user)
    manager = user.has_perm(MessagingPermission.MANAGE_TEMPLATES)
    return template_search(query=query, active_only=not (with_inactive and manager))


def template_get_readable(*, user: User, template_id: uuid.UUID) -> MessageTemplate:
    """One template `user` may read; an inactive one is "not found" to all but its managers."""
    check_can_read_templates(user)
    template = template_get(template_id=template_id)
    if not template.is_active and not user.has_perm(MessagingPermission.MANAGE_TEMPLATES):
        raise NotFound("No such template.")
    return template


def templates_with_current_versions(
    templates: Iterable[MessageTemplate],
) -> list[tuple[MessageTemplate, MessageTemplateVersion]]:
    """Pair each template with its newest version in one query."""
    templates = list(templates)
    latest: dict[Any, MessageTemplateVersion] = {}
    versions = MessageTemplateVersion.objects.filter(template__in=templates).order_by(
        "template_id", "-version"
    )
    for version in versions:
        latest.setdefault(version.template_id, version)
    return [(t, latest[t.id]) for t in templates if t.id in latest]


def deliveries_by_message(message_ids: Iterable[Any]) -> dict[Any, list[Delivery]]:
    """Deliveries of many messages in one query, by message id."""
    grouped: dict[Any, list[Delivery]] = {}
    for delivery in Delivery.objects.filter(subject_id__in=list(message_ids)).order_by("channel"):
        grouped.setdefault(delivery.subject_id, []).append(delivery)
    return grouped


def delivery_statuses_by_message(message_ids: list[Any]) -> dict[Any, dict[str, str]]:
    """{channel: status} per message, in one query that reads no payloads."""
    statuses: dict[Any, dict[str, str]] = {}
    rows = Delivery.objects.filter(subject_id__in=message_ids).order_by("channel")
    for subject_id, channel, status in rows.values_list("subject_id", "channel", "status"):
        statuses.setdefault(subject_id, {})[channel] = status
    return statuses


def messages_followup_fields(messages: Iterable[Any]) -> dict[Any, dict[str, Any]]:
    """`read_at` and `reply_state` (the follow-up clock) of many messages, each anything with
    `id`, `read_at` and `reply_state`, by message id: the one place the export reads them."""
    return {m.id: {"read_at": m.read_at, "reply_state": m.reply_state} for m in messages}


@dataclass(frozen=True)
class MessageFiles:
    """What a message carries besides its text, as every listing shows it."""

    attachments: Sequence[StoredFile] = ()
    document_requests: Sequence[DocumentRequest] = ()


NO_FILES = MessageFiles()


def files_by_message(message_ids: Iterable[Any]) -> dict[Any, MessageFiles]:
    """What many messages carry, in two queries, by message id; a message without files or
    requests is left out (`NO_FILES`)."""
    ids = list(message_ids)
    if not ids:
        return {}
    attached: dict[Any, list[StoredFile]] = {}
    rows = MessageAttachment.objects.filter(message_id__in=ids).select_related("file")
    for row in rows.order_by("message_id", "position"):
        attached.setdefault(row.message_id, []).append(row.file)
    asked: dict[Any, list[DocumentRequest]] = {}
    requests = DocumentRequest.objects.filter(message_id__in=ids).select_related("file")
    for request in requests.order_by("message_id", "position"):
        asked.setdefault(request.message_id, []).append(request)
    return {
        i: MessageFiles(attachments=attached.get(i, ()), document_requests=asked.get(i, ()))
        for i in set(attached) | set(asked)
    }


def message_files(message: Message) -> MessageFiles:
    return files_by_message([message.id]).get(message.id, NO_FILES)


def broadcast_files(broadcast_ids: Iterable[Any]) -> dict[Any, list[StoredFile]]:
    """The files of many broadcasts, in order, in one query, by broadcast id."""
    found: dict[Any, list[StoredFile]] = {}
    rows = BroadcastFile.objects.filter(broadcast_id__in=list(broadcast_ids)).select_related("file")
    for row in rows.order_by("broadcast_id", "position"):
        found.setdefault(row.broadcast_id, []).append(row.file)
    return found
