"""The send path: check, render, then write the message and its records in one transaction."""

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityType
from clientdesk.audit.services import activity_record, audit_append
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import Conflict, PermissionDenied, ValidationFailed
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Direction, IdempotencyKey, Message
from clientdesk.messaging.rendering import Rendered, render_message
from clientdesk.messaging.representations import message_representation

SEND_PERMISSION = "messaging.send_private_message"
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class SendRequest:
    """A fully checked send, not yet written."""

    sender: User
    client: Client
    source: str
    rendered: Rendered
    idempotency_key: str
    fingerprint: str
    meta: RequestMeta


@dataclass(frozen=True)
class SendResult:
    message_id: uuid.UUID
    response: dict[str, Any]
    replayed: bool


def check_can_send(user: User) -> None:
    if not user.has_perm(SEND_PERMISSION):
        raise PermissionDenied(
            "You need the 'Send a private message' permission to send messages. "
            "Ask your CRM administrator for access."
        )


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _fingerprint(*, client_id: uuid.UUID, body: str) -> str:
    canonical = json.dumps({"client": str(client_id), "body": body}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validate_key(key: str) -> None:
    if not _KEY_PATTERN.match(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1–255 printable ASCII characters without spaces "
            "(a UUID is a good choice).",
            errors={"Idempotency-Key": ["Invalid idempotency key."]},
        )


def _replay(existing: IdempotencyKey, fingerprint: str) -> SendResult:
    if existing.fingerprint != fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was already used for a different request; "
            "use a new key for a new message.",
            errors={"Idempotency-Key": ["Already used with another request body."]},
        )
    if existing.message_id is None:
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    return SendResult(existing.message_id, existing.response_body, replayed=True)


def _find_key(*, user: User, key: str) -> IdempotencyKey | None:
    existing = IdempotencyKey.objects.filter(user=user, key=key).first()
    ttl = timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    if existing is not None and existing.created_at < timezone.now() - ttl:
        existing.delete()
        return None
    return existing


def message_send_prepare(
    *, sender: User, client_id: uuid.UUID | str, body: str, idempotency_key: str, meta: RequestMeta
) -> SendRequest | SendResult:
    """Check access and input and render the text; writes nothing.

    Returns the stored result instead when the idempotency key was already answered.
    """
    check_can_send(sender)
    client = client_get(client_id=client_id)
    _validate_key(idempotency_key)
    if not body.strip():
        raise ValidationFailed(
            "Type a message before sending.", errors={"body": ["This field may not be blank."]}
        )
    if len(body) > settings.MESSAGE_MAX_LENGTH:
        raise ValidationFailed(
            f"The message is {len(body):,} characters; the limit is "
            f"{settings.MESSAGE_MAX_LENGTH:,}.",
            errors={"body": [f"At most {settings.MESSAGE_MAX_LENGTH} characters."]},
        )
    fingerprint = _fingerprint(client_id=client.id, body=body)
    existing = _find_key(user=sender, key=idempotency_key)
    if existing is not None:
        return _replay(existing, fingerprint)
    rendered = render_message(source=body, client=client, sender=sender)
    return SendRequest(
        sender=sender,
        client=client,
        source=body,
        rendered=rendered,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        meta=meta,
    )


def message_send_commit(request: SendRequest) -> SendResult:
    """Write the message, its timeline event and ledger record, and the idempotency answer.

    A concurrent request with the same key waits on the key's unique index and then
    replays this one's answer.
    """
    try:
        with transaction.atomic():
            now = timezone.now()
            key = IdempotencyKey.objects.create(
                user=request.sender,
                key=request.idempotency_key,
                fingerprint=request.fingerprint,
                created_at=now,
            )
            message = Message.objects.create(
                client=request.client,
                direction=Direction.OUT,
                sender=request.sender,
                body=request.rendered.body,
                source=request.source,
                variables=request.rendered.variables,
                idempotency_key=request.idempotency_key,
                request_ip=request.meta.ip,
                user_agent=request.meta.user_agent,
                request_id=request.meta.request_id,
                created_at=now,
            )
            activity_record(
                client=request.client,
                type=ActivityType.MESSAGE_SENT,
                actor=request.sender,
                created_at=now,
                subject_id=message.id,
                data={"message_id": str(message.id), "body": message.body},
            )
            audit_append(
                actor=request.sender,
                action="message.sent",
                object_type="message",
                object_id=message.id,
                created_at=now,
                data={
                    "client_id": str(request.client.id),
                    "body_sha256": hashlib.sha256(message.body.encode()).hexdigest(),
                    "ip": request.meta.ip,
                    "user_agent": request.meta.user_agent,
                    "request_id": request.meta.request_id,
                },
            )
            response = message_representation(message)
            key.message = message
            key.response_body = response
            key.save(update_fields=["message", "response_body"])
    except IntegrityError:
        existing = IdempotencyKey.objects.filter(
            user=request.sender, key=request.idempotency_key
        ).first()
        if existing is None:
            raise
        return _replay(existing, request.fingerprint)
    return SendResult(message.id, response, replayed=False)


def message_send(
    *, sender: User, client_id: uuid.UUID | str, body: str, idempotency_key: str, meta: RequestMeta
) -> SendResult:
    prepared = message_send_prepare(
        sender=sender, client_id=client_id, body=body, idempotency_key=idempotency_key, meta=meta
    )
    if isinstance(prepared, SendResult):
        return prepared
    return message_send_commit(prepared)


def idempotency_keys_prune() -> int:
    """Delete answers older than the advertised lifetime; returns how many went."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
