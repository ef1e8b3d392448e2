"""The staff send: check access and input and render the text, writing nothing; then hand the
message to the one writer (`writing.py`)."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import PermissionDenied, ValidationFailed
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Direction, MessageTemplateVersion
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.rendering import Rendered, RenderFailed, literal_source, render_message
from clientdesk.messaging.selectors import template_current_version, template_get
from clientdesk.messaging.services.documents import (
    FilesToWrite,
    attachments_check,
    document_requests_check,
)
from clientdesk.messaging.services.idempotency import (
    SendResult,
    idempotency_fingerprint,
    idempotency_key_check,
    idempotency_key_find,
    idempotency_replay,
)
from clientdesk.messaging.services.writing import MessageWrite, message_text_check, messages_write


@dataclass(frozen=True)
class Composed:
    """What a send would deliver: the source, the rendered text and the template it came from
    (`template_edited`: the sender changed the template's text for this client first)."""

    client: Client
    source: str
    rendered: Rendered
    template_version: MessageTemplateVersion | None = None
    template_language: str = ""
    template_edited: bool = False


def check_can_send(user: User) -> None:
    if not user.has_perm(MessagingPermission.SEND_PRIVATE_MESSAGE):
        raise PermissionDenied(
            "You need the 'Send a private message' permission to send messages. "
            "Ask your CRM administrator for access."
        )


def check_can_compose(user: User) -> None:
    """Previews show client data rendered into text: senders and template managers may."""
    if not (
        user.has_perm(MessagingPermission.SEND_PRIVATE_MESSAGE)
        or user.has_perm(MessagingPermission.MANAGE_TEMPLATES)
    ):
        raise PermissionDenied(
            "You need the 'Send a private message' or 'Manage message templates' permission."
        )


# An explicit due time a year ahead is a typo, not a plan.
_MAX_REPLY_DUE = timedelta(days=366)


def _check_reply_due(expects_reply: bool, reply_due_at: datetime | None) -> None:
    if reply_due_at is None:
        return
    if not expects_reply:
        raise ValidationFailed(
            "reply_due_at needs expects_reply: a due time for a message that expects no reply "
            "would never be checked.",
            errors={"reply_due_at": ["Set expects_reply to true, or leave this out."]},
        )
    if reply_due_at.tzinfo is None:
        raise ValidationFailed(
            "reply_due_at needs a timezone, e.g. 2026-12-01T10:00:00Z.",
            errors={"reply_due_at": ["Give a timezone (Z or +01:00)."]},
        )
    now = timezone.now()
    if not now < reply_due_at <= now + _MAX_REPLY_DUE:
        raise ValidationFailed(
            "reply_due_at must be in the future and within a year.",
            errors={"reply_due_at": ["Must be in the future and within 366 days."]},
        )


def _check_a_source(body: str | None, template_id: Any) -> None:
    if body is None and template_id is None:
        raise ValidationFailed(
            "Give a message body, a template_id, or both (the template's text as edited).",
            errors={"body": ["Give body or template_id."]},
        )


def _template_variant(
    *, client: Client, template_id: Any
) -> tuple[MessageTemplateVersion, str, str]:
    """The current version of an active template, and the language and source of the variant
    `client` gets."""
    template = template_get(template_id=template_id)
    if not template.is_active:
        raise ValidationFailed(
            f"The template {template.name!r} is deactivated and cannot be sent.",
            errors={"template_id": ["This template is deactivated."]},
        )
    version = template_current_version(template=template)
    language, source = version.variant_for(client.language)
    return version, language, source


def message_compose(
    *, sender: User, client: Client, body: str | None = None, template_id: Any = None
) -> Composed:
    """Render a body, or the client's variant of a template, exactly as a send would.

    Both: the template's text as the sender edited it. The body is checked and rendered as any
    typed text is; only when it comes out different from what the template gives this client
    is the message an edited one, else it is an ordinary send of the template.
    """
    _check_a_source(body, template_id)
    if template_id is None:
        assert body is not None  # _check_a_source
        return Composed(client=client, source=body, rendered=_render_typed(body, client, sender))
    version, language, source = _template_variant(client=client, template_id=template_id)
    if body is None:
        rendered = render_message(source=source, client=client, sender=sender)
        return Composed(client, source, rendered, version, language)
    typed = _render_typed(body, client, sender)
    try:
        unedited: Rendered | None = render_message(source=source, client=client, sender=sender)
    except RenderFailed:
        unedited = None  # the template lacks a value for this client; the edit may supply it
    if unedited is not None and unedited.body == typed.body:
        return Composed(client, source, unedited, version, language)
    return Composed(client, body, typed, version, language, template_edited=True)


def _render_typed(body: str, client: Client, sender: User) -> Rendered:
    message_text_check(body)
    return render_message(source=body, client=client, sender=sender)


def message_template_text(*, sender: User, client: Client, template_id: Any) -> str:
    """The text to edit a template's message in: the template rendered for `client`, written so
    that sending it unchanged renders the same; or, when the template lacks a value for this
    client, its source, for the sender to complete."""
    _, _, source = _template_variant(client=client, template_id=template_id)
    try:
        return literal_source(render_message(source=source, client=client, sender=sender).body)
    except RenderFailed:
        return source


def message_preview(
    *, user: User, client_id: uuid.UUID | str, body: str | None = None, template_id: Any = None
) -> Composed:
    """What `client` would receive; raises the errors a send would, and writes nothing."""
    check_can_compose(user)
    return message_compose(
        sender=user, client=client_get(client_id=client_id), body=body, template_id=template_id
    )


def message_send_prepare(
    *,
    sender: User,
    client_id: uuid.UUID | str,
    idempotency_key: str,
    meta: RequestMeta,
    body: str | None = None,
    template_id: Any = None,
    expects_reply: bool | None = None,
    reply_due_at: datetime | None = None,
    attachments: Any = None,
    document_requests: Any = None,
) -> MessageWrite | SendResult:
    """Check access and input and render the text; writes nothing.

    Returns the stored result instead when the idempotency key was already answered.
    `expects_reply` starts the client's reply clock; its due time is `reply_due_at`, or else
    comes from the follow-up policy when the message is written. None: the template's default
    (a KYC request may expect a reply), false without a template. `attachments`: ids of the
    sender's own uploads; `document_requests`: the documents asked for (None: the template's,
    if any). A message asking for documents expects a reply.
    """
    check_can_send(sender)
    client = client_get(client_id=client_id)
    idempotency_key_check(idempotency_key)
    _check_a_source(body, template_id)
    asked = document_requests_check(document_requests)
    if document_requests is None and template_id is not None:
        # The template's own requests (a KYC template asks for the same documents each time).
        version = template_current_version(template=template_get(template_id=template_id))
        asked = tuple(version.document_requests)
    if expects_reply is None:
        expects_reply = bool(asked) or (
            template_id is not None and template_get(template_id=template_id).expects_reply
        )
    _check_reply_due(expects_reply, reply_due_at)
    fingerprint = _fingerprint(
        client=client,
        body=body,
        template_id=template_id,
        expects_reply=expects_reply,
        reply_due_at=reply_due_at,
        attachments=attachments,
        document_requests=None if document_requests is None else list(asked),
    )
    # A new key is the common case, so its lookup is folded into the write (the key's unique
    # index, see writing.py). A request that would fail now still replays an earlier
    # answer under its key: a retry of a send that went through gets that answer, even after
    # the client was deactivated or the template changed.
    try:
        if not client.is_active:
            raise ValidationFailed(
                f"{client.full_name} is deactivated: messages cannot be sent. Reactivate the "
                "client first.",
                errors={"client": ["The client is deactivated."]},
            )
        composed = message_compose(sender=sender, client=client, body=body, template_id=template_id)
        files = attachments_check(attachments, user=sender)
        if asked and not expects_reply:
            raise ValidationFailed(
                "A message asking for documents expects a reply: leave expects_reply out or "
                "set it to true.",
                errors={"expects_reply": ["Must be true with document requests."]},
            )
    except ValidationFailed:
        existing = idempotency_key_find(key=idempotency_key, user=sender)
        if existing is not None:
            return idempotency_replay(existing, fingerprint)
        raise
    return MessageWrite(
        client=client,
        direction=Direction.OUT,
        sender=sender,
        body=composed.rendered.body,
        source=composed.source,
        variables=composed.rendered.variables,
        template_version=composed.template_version,
        template_language=composed.template_language,
        template_edited=composed.template_edited,
        expects_reply=expects_reply,
        reply_due_at=reply_due_at,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        meta=meta,
        files=FilesToWrite(attachments=files, document_requests=asked),
    )


def _fingerprint(
    *,
    client: Client,
    body: str | None,
    template_id: Any,
    expects_reply: bool,
    reply_due_at: datetime | None,
    attachments: Any = None,
    document_requests: list[str] | None = None,
) -> str:
    request: dict[str, Any] = {
        "client": str(client.id),
        "body": body,
        "template": None if template_id is None else str(template_id),
    }
    if expects_reply:  # only then, so keys stored before the follow-up fields still replay
        request["expects_reply"] = True
        request["reply_due_at"] = reply_due_at.isoformat() if reply_due_at else None
    if attachments:  # only then, so keys stored before files still replay
        request["attachments"] = [str(a) for a in attachments]
    if document_requests:
        request["document_requests"] = document_requests
    return idempotency_fingerprint(request)


def message_send(
    *,
    sender: User,
    client_id: uuid.UUID | str,
    idempotency_key: str,
    meta: RequestMeta,
    body: str | None = None,
    template_id: Any = None,
    expects_reply: bool | None = None,
    reply_due_at: datetime | None = None,
    attachments: Any = None,
    document_requests: Any = None,
) -> SendResult:
    prepared = message_send_prepare(
        sender=sender,
        client_id=client_id,
        body=body,
        template_id=template_id,
        idempotency_key=idempotency_key,
        meta=meta,
        expects_reply=expects_reply,
        reply_due_at=reply_due_at,
        attachments=attachments,
        document_requests=document_requests,
    )
    if isinstance(prepared, SendResult):
        return prepared
    return messages_write(writes=[prepared])[0]
