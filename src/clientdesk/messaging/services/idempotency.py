"""Idempotency keys of sends: the fingerprint of a request, the stored first answer, replays
and the pruning of old keys."""

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.core.errors import Conflict, ValidationFailed
from clientdesk.messaging.models import IdempotencyKey

_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class SendResult:
    message_id: uuid.UUID
    response: dict[str, Any]
    replayed: bool


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def idempotency_fingerprint(
    *,
    client_id: uuid.UUID,
    body: str | None,
    template_id: str | None,
    expects_reply: bool = False,
    reply_due_at: datetime | None = None,
) -> str:
    request: dict[str, Any] = {"client": str(client_id), "body": body, "template": template_id}
    if expects_reply:  # only then, so keys stored before the follow-up fields still replay
        request["expects_reply"] = True
        request["reply_due_at"] = reply_due_at.isoformat() if reply_due_at else None
    canonical = json.dumps(request, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key_check(key: str) -> None:
    if not _KEY_PATTERN.match(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1–255 printable ASCII characters without spaces "
            "(a UUID is a good choice).",
            errors={"Idempotency-Key": ["Invalid idempotency key."]},
        )


def idempotency_replay(existing: IdempotencyKey, fingerprint: str) -> SendResult:
    if existing.fingerprint != fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was already used for a different request; "
            "use a new key for a new message.",
            errors={"Idempotency-Key": ["Already used with another request body."]},
        )
    if existing.message_id is None:
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    return SendResult(existing.message_id, existing.response_body, replayed=True)


def idempotency_key_find(*, user: User, key: str) -> IdempotencyKey | None:
    existing = IdempotencyKey.objects.filter(user=user, key=key).first()
    ttl = timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    if existing is not None and existing.created_at < timezone.now() - ttl:
        existing.delete()
        return None
    return existing


def idempotency_keys_prune() -> int:
    """Delete answers older than the advertised lifetime; returns how many went."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
