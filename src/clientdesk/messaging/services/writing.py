"""The one writer of messages: every message (a staff send, a client's reply, a broadcast's
recipients) is written by `messages_write`, one or thousands at a time, with what it records.

Callers check first and write nothing while they do (`message_send_prepare`,
`portal_reply_create`): access, the text (`message_text_check`, one rule for every author), the
rendering, the idempotency key's form. They hand over `MessageWrite`s that need no more checking,
and `messages_write` writes them all or none, in one transaction (on SQLite an IMMEDIATE one, so
writers take turns from its start), in this order, each step one statement for the whole batch:

1. The clients' rows, locked in id order: the conversation's mutex (one client's follow-up clocks
   move one message at a time), and what makes a check under it hold (`check_locked`, e.g. the
   client's reply rate). Two writes lock in the same order, so they never wait on each other in
   a cycle. (SQLite has no row locks: its IMMEDIATE transaction holds the whole database.)
2. The messages, then what they carry (`documents.py`): their files bound to each recipient,
   the attachments, the document requests, and the requests a reply answers (a request
   answered meanwhile refuses the write).
3. `messages_written` hooks (`messaging/hooks.py`): the follow-up clocks, in the overdue job's
   lock order (due rows, messages, conversation). A policy that cannot give a due time skips
   the clock, never the message.
4. The timeline entries.
5. The deliveries, through delivery's queue; the payloads come from `messaging/outbound.py`.
6. The idempotency keys with their first answers. The key's unique index settles retries: a
   key answered before, or by a concurrent request (whose insert waits on the index until that
   one commits), fails the insert, the transaction rolls back whole, and the stored answer is
   replayed instead. So racing duplicates make one message.
7. The ledger entries, one per message (`message.sent`, `message.received`).
8. The live events, last: they take the global live-event order lock, and a transaction that
   holds it must wait for nothing else (`core/live/recording.py: live_events_record`). Just
   before, the `messages_announced` hooks may write rows and add live events of their own (who
   hears of a client's reply, `followup/notifications.py`), recorded with the writer's.

Nothing leaves the process inside the transaction: deliveries and live events are rows,
announced on commit.
"""

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, ActivityType, AuditEntry
from clientdesk.audit.services import activity_build, audit_build, audit_entries_append
from clientdesk.clients.models import Client
from clientdesk.core.access import request_surface
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.live.recording import live_events_record
from clientdesk.core.metrics import messages_sent_observe
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.textcheck import text_problem
from clientdesk.delivery.models import Delivery
from clientdesk.messaging.hooks import MessagesAnnounced, messages_announced, messages_written
from clientdesk.messaging.models import (
    Category,
    Direction,
    IdempotencyKey,
    Message,
    MessageTemplateVersion,
)
from clientdesk.messaging.outbound import messages_deliveries_create
from clientdesk.messaging.representations import (
    attachment_representation,
    message_client_representation,
    message_representation,
)
from clientdesk.messaging.selectors import NO_FILES, MessageFiles
from clientdesk.messaging.services.documents import FilesToWrite, message_files_write
from clientdesk.messaging.services.idempotency import (
    SendResult,
    idempotency_key_find,
    idempotency_replay,
)


def message_text_check(body: str, *, noun: str = "message", blank_ok: bool = False) -> None:
    """What any author may write: text, not blank (unless `blank_ok`: a reply of files alone),
    within the length limit either way. `noun` names the text in the error ("message",
    "reply")."""
    if problem := text_problem(body):
        raise ValidationFailed(f"The {noun} {problem}", errors={"body": [f"The text {problem}"]})
    if not blank_ok and not body.strip():
        raise ValidationFailed(
            f"Type a {noun} before sending.", errors={"body": ["This field may not be blank."]}
        )
    if len(body) > settings.MESSAGE_MAX_LENGTH:
        raise ValidationFailed(
            f"The {noun} is {len(body):,} characters; the limit is "
            f"{settings.MESSAGE_MAX_LENGTH:,}.",
            errors={"body": [f"At most {settings.MESSAGE_MAX_LENGTH} characters."]},
        )


@dataclass(frozen=True)
class MessageWrite:
    """One fully checked message, not yet written.

    `direction` OUT: from the business, `sender` its author; IN: from the client, who is its
    author. `idempotency_key` (with the request's `fingerprint`) is the author's: empty for a
    message no request can retry. `broadcast_id`: the broadcast it is one recipient's copy of
    (one per client, by a unique index); `notify_at`: when its notifications (deliveries) may
    go first, None for at once (a broadcast's quiet hours hold them; the message is written
    now). `files`: its attachments, the documents it asks for, the requests a reply answers
    (checked by `documents.py`)."""

    client: Client
    direction: Direction
    body: str
    meta: RequestMeta
    sender: User | None = None
    source: str = ""  # as typed, variables unrendered; the body when empty
    variables: dict[str, Any] = field(default_factory=dict)
    template_version: MessageTemplateVersion | None = None
    template_language: str = ""
    template_edited: bool = False
    in_reply_to: Message | None = None
    expects_reply: bool = False
    reply_due_at: datetime | None = None
    idempotency_key: str = ""
    fingerprint: str = ""
    category: Category = Category.SERVICE
    broadcast_id: uuid.UUID | None = None
    notify_at: datetime | None = None
    files: FilesToWrite = field(default_factory=FilesToWrite)


LockedCheck = Callable[[datetime], None]


def messages_write(
    *, writes: Sequence[MessageWrite], check_locked: LockedCheck | None = None
) -> list[SendResult]:
    """Write the messages and all they record (the module's docstring says what, and in which
    order); returns each one's answer, in the order given: written now, or replayed from its
    idempotency key. `check_locked(now)` runs once the clients are locked and may refuse the
    whole write by raising.

    Messages of one client move its clocks in the order given, as if written one by one; each
    answer shows its message as the whole write left it. An author's key appears once a call."""
    keyed = [(w.direction, *_author(w).values(), w.idempotency_key) for w in writes]
    keyed = [k for k in keyed if k[-1]]
    if len(set(keyed)) != len(keyed):
        raise ValueError("an author's idempotency key appears twice in one write")
    for last_try in (False, True):
        try:
            return _write(writes, check_locked)
        except IntegrityError:
            if not any(w.idempotency_key for w in writes):
                raise
            replayed = _replays(writes)
            if replayed:
                rest = [w for n, w in enumerate(writes) if n not in replayed]
                written = iter(messages_write(writes=rest, check_locked=check_locked))
                return [replayed[n] if n in replayed else next(written) for n in range(len(writes))]
            if last_try:
                raise
            # A stored key had outlived its lifetime and went just now: write once more.
    raise AssertionError("unreachable")


def _replays(writes: Sequence[MessageWrite]) -> dict[int, SendResult]:
    """The stored answers of the writes whose key was answered before (a different request under
    the same key raises)."""
    replayed = {}
    for n, write in enumerate(writes):
        if not write.idempotency_key:
            continue
        existing = idempotency_key_find(key=write.idempotency_key, **_author(write))
        if existing is not None:
            replayed[n] = idempotency_replay(existing, write.fingerprint)
    return replayed


def _author(write: MessageWrite) -> dict[str, Any]:
    if write.direction == Direction.OUT:
        return {"user": write.sender}
    return {"client": write.client}


def _write(writes: Sequence[MessageWrite], check_locked: LockedCheck | None) -> list[SendResult]:
    if not writes:
        return []
    with transaction.atomic():
        if connection.features.has_select_for_update:  # SQLite's writer holds the database
            list(
                Client.objects.select_for_update()
                .filter(pk__in={w.client.pk for w in writes})
                .order_by("pk")
                .values_list("pk", flat=True)
            )
        now = timezone.now()
        if check_locked is not None:
            check_locked(now)
        messages = Message.objects.bulk_create(_message(w, now) for w in writes)
        carried = message_files_write(messages, [w.files for w in writes], now=now)
        files = [carried.get(m.id, NO_FILES) for m in messages]
        messages_written(messages)
        ActivityEvent.objects.bulk_create(
            _activity(m, f) for m, f in zip(messages, files, strict=True)
        )
        deliveries = messages_deliveries_create(
            messages, notify_at=[w.notify_at for w in writes], files=files
        )
        results = [
            SendResult(m.id, _answer(m, queued, f), replayed=False, message=m)
            for m, queued, f in zip(messages, deliveries, files, strict=True)
        ]
        keys = [
            IdempotencyKey(
                key=w.idempotency_key,
                fingerprint=w.fingerprint,
                message=r.message,
                response_body=r.response,
                created_at=now,
                **_author(w),
            )
            for w, r in zip(writes, results, strict=True)
            if w.idempotency_key
        ]
        if keys:
            IdempotencyKey.objects.bulk_create(keys)
        audit_entries_append(
            [_ledger_entry(m, f, w.files) for m, f, w in zip(messages, files, writes, strict=True)]
        )
        announced = MessagesAnnounced(messages=messages)
        messages_announced(announced)
        live_events_record(
            [
                (m.client_id, "message.created", message_client_representation(m, files=f))
                for m, f in zip(messages, files, strict=True)
            ]
            + announced.live_events
        )
        # Counted once committed (a broadcast's batch may roll back whole).
        transaction.on_commit(partial(messages_sent_observe, messages, surface=request_surface()))
    return results


def _message(write: MessageWrite, now: datetime) -> Message:
    version = write.template_version
    return Message(
        client=write.client,
        direction=write.direction,
        sender=write.sender,
        body=write.body,
        source=write.source or write.body,
        variables=write.variables,
        template=version.template if version else None,
        template_version=version.version if version else None,
        template_language=write.template_language,
        template_edited=write.template_edited,
        idempotency_key=write.idempotency_key,
        request_ip=write.meta.ip,
        user_agent=write.meta.user_agent,
        request_id=write.meta.request_id,
        created_at=now,
        in_reply_to=write.in_reply_to,
        expects_reply=write.expects_reply,
        reply_due_at=write.reply_due_at,
        category=write.category,
        broadcast_id=write.broadcast_id,
    )


def _answer(message: Message, deliveries: list[Delivery], files: MessageFiles) -> dict[str, Any]:
    """The first response, as its author's side shows a message: staff see the deliveries."""
    if message.direction == Direction.OUT:
        return message_representation(message, deliveries=deliveries, files=files)
    return message_client_representation(message, files=files)


def _file_record(file: Any) -> dict[str, Any]:
    """A file as the timeline and the ledger hold it: what proves which bytes were sent."""
    shape = attachment_representation(file)
    del shape["id"]
    return shape


def _activity(message: Message, files: MessageFiles) -> ActivityEvent:
    inbound = message.direction == Direction.IN
    data: dict[str, Any] = {"message_id": str(message.id), "body": message.body}
    if files.attachments:
        data["attachments"] = [_file_record(f) for f in files.attachments]
    if files.document_requests:
        data["document_requests"] = [r.label for r in files.document_requests]
    if message.template_id:
        data["template"] = _template_summary(message)
    if message.broadcast_id is not None:
        data["broadcast_id"] = str(message.broadcast_id)
    return activity_build(
        client=message.client,
        type=ActivityType.REPLY_RECEIVED if inbound else ActivityType.MESSAGE_SENT,
        actor=message.sender,
        by_client=inbound,
        created_at=message.created_at,
        subject_id=message.id,
        data=data,
    )


def _template_summary(message: Message) -> dict[str, Any]:
    """The template a message came from, as its timeline entry names it."""
    assert message.template is not None
    return {
        "id": str(message.template_id),
        "name": message.template.name,
        "version": message.template_version,
        "language": message.template_language,
        "edited": message.template_edited,
    }


def _ledger_entry(message: Message, files: MessageFiles, wanted: FilesToWrite) -> AuditEntry:
    inbound = message.direction == Direction.IN
    data: dict[str, Any]
    if inbound:
        data = {"in_reply_to": str(message.in_reply_to_id) if message.in_reply_to_id else None}
    else:
        data = {
            "client_id": str(message.client_id),
            "template_id": str(message.template_id) if message.template_id else None,
            "template_version": message.template_version,
            "template_edited": message.template_edited,
        }
        if message.broadcast_id is not None:
            data["broadcast_id"] = str(message.broadcast_id)
            data["category"] = message.category
    if files.attachments:
        data["attachments"] = [_file_record(f) for f in files.attachments]
    if files.document_requests:
        data["document_requests"] = [
            {"id": str(r.id), "label": r.label} for r in files.document_requests
        ]
    if wanted.fulfils:
        data["fulfils"] = {str(f.request.pk): f.file.sha256 for f in wanted.fulfils}
    return audit_build(
        actor=message.sender,
        client_actor=message.client if inbound else None,
        action="message.received" if inbound else "message.sent",
        object_type="message",
        object_id=message.id,
        created_at=message.created_at,
        data={
            **data,
            "body_sha256": hashlib.sha256(message.body.encode()).hexdigest(),
            "ip": message.request_ip,
            "user_agent": message.user_agent,
            "request_id": message.request_id,
        },
    )
