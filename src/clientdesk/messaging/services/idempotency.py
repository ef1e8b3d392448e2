"""Idempotency keys of the requests that write messages (staff sends, client replies): the key's
form, the request's fingerprint, the stored first answer, replays and the pruning of old keys.

The writer (`writing.py`) stores the answer under the key's unique index, per author: a staff
user's keys and a client's keys never meet."""

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.errors import Conflict, ValidationFailed
from clientdesk.messaging.models import IdempotencyKey, Message

# fullmatch: `$` would let a trailing newline through.
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True)
class SendResult:
    """The answer to a request that writes a message: its first response, replayed or not.
    `message`: the message itself when this request wrote it (a replay names it by id only)."""

    message_id: uuid.UUID
    response: dict[str, Any]
    replayed: bool
    message: Message | None = field(default=None, compare=False, repr=False)


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def idempotency_key_check(key: str) -> None:
    if not _KEY_PATTERN.fullmatch(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1–255 printable ASCII characters without spaces "
            "(a UUID is a good choice).",
            errors={"Idempotency-Key": ["Invalid idempotency key."]},
        )


def idempotency_fingerprint(request: dict[str, Any]) -> str:
    """SHA-256 of the request as canonical JSON: what a retry must repeat to be replayed."""
    canonical = json.dumps(request, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


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


def idempotency_key_find(
    *, key: str, user: User | None = None, client: Client | None = None
) -> IdempotencyKey | None:
    """The answer stored under `key` for its author (a staff user, or a client), unless it has
    outlived its lifetime (then it goes now)."""
    author = {"user": user} if user is not None else {"client": client}
    existing = IdempotencyKey.objects.filter(key=key, **author).first()
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
