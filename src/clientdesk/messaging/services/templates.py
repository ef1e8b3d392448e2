"""Message templates: create, and change by named actions. A change of text or languages makes
a new immutable version (one per change, however many actions it holds); renaming and
(de)activating do not."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.services import audit_append
from clientdesk.clients.validators import validate_language
from clientdesk.core.errors import Conflict, PermissionDenied, ValidationFailed
from clientdesk.messaging.models import MessageTemplate, MessageTemplateVersion
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.rendering import (
    check_renders_within_bounds,
    check_template_variables,
    parse_template,
)
from clientdesk.messaging.selectors import template_current_version, template_get
from clientdesk.messaging.services.documents import document_requests_check


def check_can_manage_templates(user: User) -> None:
    if not user.has_perm(MessagingPermission.MANAGE_TEMPLATES):
        raise PermissionDenied("You need the 'Manage message templates' permission.")


def _check_template_body(body: str, *, field: str = "body") -> None:
    if not body.strip():
        raise ValidationFailed(
            "A template needs a body.", errors={field: ["This field may not be blank."]}
        )
    if len(body) > settings.MESSAGE_MAX_LENGTH:
        raise ValidationFailed(
            f"The template is {len(body):,} characters; the limit is "
            f"{settings.MESSAGE_MAX_LENGTH:,}.",
            errors={field: [f"At most {settings.MESSAGE_MAX_LENGTH} characters."]},
        )
    _, paths = parse_template(body)
    check_template_variables(paths)
    check_renders_within_bounds(body)


def _check_language(language: str, *, field: str = "language") -> None:
    try:
        validate_language(language)
    except DjangoValidationError as error:
        raise ValidationFailed(error.messages[0], errors={field: error.messages}) from error


def _check_name(name: str, *, template_id: uuid.UUID | None = None) -> str:
    name = name.strip()
    if not name or len(name) > 120:
        raise ValidationFailed(
            "A template needs a name of 1–120 characters.",
            errors={"name": ["1–120 characters."]},
        )
    clash = MessageTemplate.objects.filter(name__iexact=name)
    if template_id is not None:
        clash = clash.exclude(pk=template_id)
    if clash.exists():
        raise _name_taken(name)
    return name


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"A template named {name!r} already exists.",
        errors={"name": ["A template with this name already exists."]},
    )


def template_create(
    *,
    author: User,
    name: str,
    body: str,
    language: str,
    expects_reply: bool = False,
    document_requests: Any = None,
) -> MessageTemplateVersion:
    """Create a template and its version 1, whose only variant (`language`) is the default.
    `expects_reply`: messages from it start the client's reply clock unless the sender says
    otherwise. `document_requests`: the documents every message from it asks for."""
    check_can_manage_templates(author)
    name = _check_name(name)
    _check_language(language)
    _check_template_body(body)
    asked = list(document_requests_check(document_requests))
    try:
        with transaction.atomic():
            template = MessageTemplate.objects.create(
                name=name, created_by=author, expects_reply=expects_reply
            )
            version = MessageTemplateVersion.objects.create(
                template=template,
                version=1,
                default_language=language,
                variants={language: body},
                document_requests=asked,
                author=author,
            )
            audit_append(
                actor=author,
                action="template.created",
                object_type="message_template",
                object_id=template.id,
                created_at=timezone.now(),
                data={
                    "name": name,
                    "version": 1,
                    "variants": version.variants,
                    "expects_reply": expects_reply,
                    **({"document_requests": asked} if asked else {}),
                },
            )
    except IntegrityError as error:
        raise _name_taken(name) from error
    return version


@dataclass
class _Draft:
    """The template's next state while actions apply to it."""

    name: str
    is_active: bool
    expects_reply: bool
    default_language: str
    variants: dict[str, str]
    document_requests: list[str]


@dataclass(frozen=True)
class Rename:
    name: str

    def check(self, *, template_id: uuid.UUID) -> "Rename":
        return Rename(_check_name(self.name, template_id=template_id))

    def apply(self, draft: _Draft) -> None:
        draft.name = self.name


@dataclass(frozen=True)
class SetActive:
    active: bool

    def check(self, *, template_id: uuid.UUID) -> "SetActive":
        return self

    def apply(self, draft: _Draft) -> None:
        draft.is_active = self.active


@dataclass(frozen=True)
class SetExpectsReply:
    expects_reply: bool

    def check(self, *, template_id: uuid.UUID) -> "SetExpectsReply":
        return self

    def apply(self, draft: _Draft) -> None:
        draft.expects_reply = self.expects_reply


@dataclass(frozen=True)
class SetVariant:
    """Set the body of one language (the default language when `language` is None)."""

    body: str
    language: str | None = None

    def check(self, *, template_id: uuid.UUID) -> "SetVariant":
        _check_template_body(self.body)
        if self.language is not None:
            _check_language(self.language)
        return self

    def apply(self, draft: _Draft) -> None:
        draft.variants[self.language or draft.default_language] = self.body


@dataclass(frozen=True)
class SetDefaultLanguage:
    language: str

    def check(self, *, template_id: uuid.UUID) -> "SetDefaultLanguage":
        _check_language(self.language, field="default_language")
        return self

    def apply(self, draft: _Draft) -> None:
        if self.language not in draft.variants:
            raise ValidationFailed(
                f"There is no {self.language!r} variant to make the default.",
                errors={"default_language": ["No variant in that language."]},
            )
        draft.default_language = self.language


@dataclass(frozen=True)
class RemoveVariant:
    language: str

    def check(self, *, template_id: uuid.UUID) -> "RemoveVariant":
        return self

    def apply(self, draft: _Draft) -> None:
        if self.language == draft.default_language:
            raise ValidationFailed(
                "The default variant cannot be removed; make another language the default first.",
                errors={"remove_language": ["This is the default variant."]},
            )
        if draft.variants.pop(self.language, None) is None:
            raise ValidationFailed(
                f"There is no {self.language!r} variant.",
                errors={"remove_language": ["No variant in that language."]},
            )


@dataclass(frozen=True)
class SetDocumentRequests:
    """The documents every message of the template asks for (labels, or {"label"} objects)."""

    document_requests: Any
    _labels: tuple[str, ...] = ()

    def check(self, *, template_id: uuid.UUID) -> "SetDocumentRequests":
        return SetDocumentRequests(
            self.document_requests, document_requests_check(self.document_requests)
        )

    def apply(self, draft: _Draft) -> None:
        draft.document_requests = list(self._labels)


TemplateAction = (
    Rename
    | SetActive
    | SetExpectsReply
    | SetVariant
    | SetDefaultLanguage
    | RemoveVariant
    | SetDocumentRequests
)


def _version_create(
    *, template: MessageTemplate, after: MessageTemplateVersion, draft: _Draft, author: User
) -> MessageTemplateVersion:
    """The one place a template gets a new version: the next number, the draft's text."""
    return MessageTemplateVersion.objects.create(
        template=template,
        version=after.version + 1,
        default_language=draft.default_language,
        variants=draft.variants,
        document_requests=draft.document_requests,
        author=author,
    )


def template_change(
    *, author: User, template_id: uuid.UUID, actions: Sequence[TemplateAction]
) -> MessageTemplateVersion:
    """Apply `actions` in order, in one transaction with one ledger record; returns the
    current version (a new one when the text or languages changed)."""
    check_can_manage_templates(author)
    template = template_get(template_id=template_id)
    checked = [action.check(template_id=template.id) for action in actions]
    try:
        with transaction.atomic():
            template = MessageTemplate.objects.select_for_update().get(pk=template.pk)
            current = template_current_version(template=template)
            draft = _Draft(
                name=template.name,
                is_active=template.is_active,
                expects_reply=template.expects_reply,
                default_language=current.default_language,
                variants=dict(current.variants),
                document_requests=list(current.document_requests),
            )
            for action in checked:
                action.apply(draft)
            changes: dict[str, Any] = {}
            if draft.name != template.name:
                changes["name"] = template.name = draft.name
            if draft.is_active != template.is_active:
                changes["is_active"] = template.is_active = draft.is_active
            if draft.expects_reply != template.expects_reply:
                changes["expects_reply"] = template.expects_reply = draft.expects_reply
            asks = draft.document_requests != current.document_requests
            if (
                draft.variants != current.variants
                or draft.default_language != current.default_language
                or asks
            ):
                current = _version_create(
                    template=template, after=current, draft=draft, author=author
                )
                changes["version"] = current.version
                changes["variants"] = draft.variants
                if asks:
                    changes["document_requests"] = draft.document_requests
            if changes:
                template.save()
                audit_append(
                    actor=author,
                    action="template.updated",
                    object_type="message_template",
                    object_id=template.id,
                    created_at=timezone.now(),
                    data=changes,
                )
    except IntegrityError as error:
        # Two renames to one name at once: the unique index decides, the loser hears why.
        raise _name_taken(draft.name) from error
    current.template = template
    return current
