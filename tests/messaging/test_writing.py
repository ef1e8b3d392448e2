"""The one writer of messages (`messaging/services/writing.py`): thousands of messages written in
one call are exactly what the same messages written one at a time are — messages, clocks,
conversations, timeline, ledger, deliveries, idempotency answers, live events — in a number of
statements that does not grow with the batch."""

import math
import re
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent, AuditEntry
from clientdesk.clients.models import Client
from clientdesk.clients.services import clients_bulk_create
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.models import LiveEvent
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery, OutgoingEndpoint
from clientdesk.followup.models import Conversation, FollowUpDue, ReplyNotification
from clientdesk.followup.selectors import policy_get
from clientdesk.messaging.models import Direction, IdempotencyKey, Message
from clientdesk.messaging.services.idempotency import idempotency_fingerprint
from clientdesk.messaging.services.sending import message_send_prepare
from clientdesk.messaging.services.templates import template_create
from clientdesk.messaging.services.writing import MessageWrite, messages_write

pytestmark = pytest.mark.django_db

META = RequestMeta(ip="198.51.100.7", user_agent="batch-test/1.0", request_id="req-batch")
DUE = timezone.now().replace(microsecond=0) + timedelta(days=3)
# Per slot of four clients: a plain send; a send expecting a reply by DUE; a client's message;
# and one conversation in three turns (we ask, the client answers, we respond).
SLOT = ["plain", "asks", "client", "turn-ask", "turn-answer", "turn-respond"]
SLOT_CLIENTS = 4


def _clients(prefix: str, count: int) -> list[Client]:
    """`count` clients, alike but for their external id, so two sets can be compared."""
    clients_bulk_create(
        rows=(
            {
                "external_id": f"{prefix}-{n:05d}",
                "first_name": "Zoë",
                "last_name": f"Ångström{n}",
                "email": f"client{n}@example.com" if n % 2 else "",
                "language": "de" if n % 3 else "en",
            }
            for n in range(count)
        )
    )
    return list(Client.objects.filter(external_id__startswith=f"{prefix}-").order_by("external_id"))


def _plan(sender: Any, clients: list[Client], count: int, template_id: Any) -> list[MessageWrite]:
    """`count` checked writes over `clients`, built as the staff send and the portal reply build
    them; idempotency keys unique to the set of clients."""
    keys = clients[0].external_id

    def staff(client: Client, n: int, **extra: Any) -> MessageWrite:
        prepared = message_send_prepare(
            sender=sender,
            client_id=client.id,
            idempotency_key=f"send-{keys}-{n}",
            meta=META,
            **extra,
        )
        assert isinstance(prepared, MessageWrite)
        return prepared

    def reply(client: Client, n: int, body: str) -> MessageWrite:
        return MessageWrite(
            client=client,
            direction=Direction.IN,
            body=body,
            meta=META,
            idempotency_key=f"reply-{keys}-{n}",
            fingerprint=idempotency_fingerprint({"body": body, "in_reply_to": ""}),
        )

    writes = []
    for n in range(count):
        kind = SLOT[n % len(SLOT)]
        base = (n // len(SLOT)) * SLOT_CLIENTS
        if kind == "plain":
            writes.append(staff(clients[base], n, body=f"Hello {{{{firstName}}}} #{n}"))
        elif kind == "asks":
            writes.append(staff(clients[base + 1], n, template_id=template_id, reply_due_at=DUE))
        elif kind == "client":
            writes.append(reply(clients[base + 2], n, f"A question <b>{n}</b>"))
        elif kind == "turn-ask":
            writes.append(staff(clients[base + 3], n, body="Your passport?", expects_reply=True))
        elif kind == "turn-answer":
            writes.append(reply(clients[base + 3], n, "Here it is"))
        else:
            writes.append(staff(clients[base + 3], n, body="Thank you"))
    return writes


VOLATILE = {"id", "message_id", "client_id", "created_at", "timestamp", "delivery_id"}
VOLATILE |= {"webhook_id", "external_id", "subject_id", "object_id", "actor_id"}
VOLATILE |= {"next_attempt_at", "reply_due_at", "answered_at"}  # compared apart below


def _stable(value: Any) -> Any:
    """`value` without what differs between two writes of the same message: ids and instants."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _records(messages: list[Message]) -> list[dict[str, Any]]:
    """What was written for each message, without ids and instants, in the order written."""
    ids = [m.id for m in messages]
    by_id = {m.id: m for m in Message.objects.filter(pk__in=ids)}
    activity = {a.subject_id: a for a in ActivityEvent.objects.filter(subject_id__in=ids)}
    ledger = {
        e.object_id: e for e in AuditEntry.objects.filter(object_id__in=[str(i) for i in ids])
    }
    deliveries: dict[uuid.UUID, list[Delivery]] = {}
    for d in Delivery.objects.filter(subject_id__in=ids).order_by("channel"):
        deliveries.setdefault(d.subject_id, []).append(d)
    events = {
        e.data["id"]: e
        for e in LiveEvent.objects.filter(
            type="message.created", client_id__in=[m.client_id for m in messages]
        )
    }
    keys = {k.message_id: k for k in IdempotencyKey.objects.filter(message_id__in=ids)}
    due = set(FollowUpDue.objects.filter(message_id__in=ids).values_list("message_id", flat=True))
    out = []
    for message in messages:
        stored = by_id[message.id]
        a, e, k = activity[message.id], ledger[str(message.id)], keys[message.id]
        assert a.data["message_id"] == str(message.id) and a.client_id == stored.client_id
        event = events[str(message.id)]
        assert event.client_id == stored.client_id
        out.append(
            {
                "message": {
                    f: getattr(stored, f)
                    for f in (
                        "direction",
                        "sender_id",
                        "body",
                        "source",
                        "variables",
                        "template_id",
                        "template_version",
                        "template_language",
                        "template_edited",
                        "request_ip",
                        "user_agent",
                        "request_id",
                        "expects_reply",
                        "reply_state",
                    )
                },
                # An explicit due time is kept; the policy's follows each message's own instant.
                "due": stored.reply_due_at == DUE if stored.expects_reply else None,
                "due_set": stored.reply_due_at is not None,
                "answered": stored.answered_at is not None,
                "due_row": stored.id in due,
                "activity": (a.type, a.actor_type, a.actor_user_id, a.actor_label, _stable(a.data)),
                "ledger": (e.action, e.actor_type, e.actor_label, _stable(e.data)),
                "deliveries": [
                    (d.channel, d.status, _stable(d.payload))
                    for d in deliveries.get(message.id, [])
                ],
                "event": (event.type, _stable(event.data)),
                "key": (_unkeyed(k.key), _unkeyed(stored.idempotency_key), k.user_id),
                "answer": _answered(k.response_body, stored),
            }
        )
    return out


def _answered(answer: dict[str, Any], stored: Message) -> dict[str, Any]:
    """The first answer without ids and instants. Its clock is the message's as the write left
    it, so a single write's question answered by a later write said "awaiting" then, and the
    same question answered within one batch says "answered": the stored state stands in."""
    if "reply_state" in answer:  # staff see the clock
        assert answer["reply_state"] in (stored.reply_state, "awaiting")
        answer = {**answer, "reply_state": stored.reply_state}
    return _stable(answer)


def _unkeyed(key: str) -> str:
    """A key without the client set's part (the fingerprint differs by client too)."""
    return re.sub(r"-[A-Z]-\d{5}-", "-", key)


def _conversations(clients: list[Client]) -> list[tuple[Any, ...]]:
    rows = {
        c.client_id: c
        for c in Conversation.objects.filter(client__in=clients).select_related("last_message")
    }
    return [
        (
            rows[c.id].last_direction,
            rows[c.id].last_message.body,
            rows[c.id].unanswered_in,
            rows[c.id].reply_due_at is None,
            rows[c.id].response_due_at is None,
        )
        for c in clients
        if c.id in rows
    ]


@pytest.fixture
def template_id(make_user):
    author = make_user("Manager")
    return template_create(
        author=author,
        name="KYC",
        body="Hallo {{ firstName }}, bitte antworten.",
        language="de",
        expects_reply=True,
    ).template_id


def test_a_batch_of_600_is_what_600_single_writes_are(agent, template_id, settings):
    OutgoingEndpoint.objects.create(pk=1, url="https://example.invalid/h", email_enabled=True)
    count = 600
    slots = math.ceil(count / len(SLOT))
    batch_clients = _clients("B", slots * SLOT_CLIENTS)
    single_clients = _clients("S", slots * SLOT_CLIENTS)

    batch = messages_write(writes=_plan(agent, batch_clients, count, template_id))
    singles = [
        messages_write(writes=[write])[0]
        for write in _plan(agent, single_clients, count, template_id)
    ]

    assert len(batch) == len(singles) == count
    assert not any(r.replayed for r in batch + singles)
    batch_messages = [r.message for r in batch]
    single_messages = [r.message for r in singles]
    assert all(batch_messages) and all(single_messages)
    written_batch = _records(batch_messages)  # type: ignore[arg-type]
    written_singles = _records(single_messages)  # type: ignore[arg-type]
    for n, (b, s) in enumerate(zip(written_batch, written_singles, strict=True)):
        assert b == s, (n, SLOT[n % len(SLOT)])
    # What each caller was answered is what was stored as the key's answer.
    for b in batch:
        assert IdempotencyKey.objects.get(message_id=b.message_id).response_body == b.response
    assert _conversations(batch_clients) == _conversations(single_clients)
    # The clocks moved: the asked turn was answered, the client's open message is answered by
    # our response, the lone client message still waits.
    states = Counter(m["message"]["reply_state"] for m in written_batch)
    kinds = Counter(SLOT[n % len(SLOT)] for n in range(count))
    assert states["answered"] == kinds["turn-ask"] + kinds["turn-answer"]
    assert states["awaiting"] == kinds["asks"] + kinds["client"]
    assert Message.objects.count() == 2 * count
    assert ActivityEvent.objects.filter(type__in=["message.sent", "message.received"]).count() == (
        2 * count
    )


INSERT = re.compile(r'^\s*INSERT INTO "(\w+)"', re.I)
STATEMENT = re.compile(r'^\s*(\w+)(?:.*?\bFROM "(\w+)"|.*?\bUPDATE "(\w+)")?', re.I | re.S)


def _shape(queries: list[dict[str, Any]]) -> tuple[Counter[str], Counter[str]]:
    """(INSERTs per table, every other statement by its first word and table)."""
    inserts: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for query in queries:
        sql = query["sql"]
        if match := INSERT.match(sql):
            inserts[match.group(1)] += 1
        else:
            m = STATEMENT.match(sql)
            assert m is not None, sql
            others[f"{m.group(1).upper()} {m.group(2) or m.group(3) or ''}"] += 1
    return inserts, others


def test_the_statements_of_a_batch_do_not_grow_with_it(agent, template_id):
    OutgoingEndpoint.objects.create(pk=1, url="https://example.invalid/h", email_enabled=True)
    small, large = len(SLOT) * 2, 2004
    clients = _clients("Q", (small + large) // len(SLOT) * SLOT_CLIENTS)
    cut = small // len(SLOT) * SLOT_CLIENTS
    policy_get()  # created with the defaults on first use: not the writer's statements
    shapes = []
    for count, group in ((small, clients[:cut]), (large, clients[cut:])):
        writes = _plan(agent, group, count, template_id)
        with CaptureQueriesContext(connection) as captured:
            messages_write(writes=writes)
        shapes.append(_shape(captured.captured_queries))
    (small_inserts, small_others), (large_inserts, large_others) = shapes
    assert small_others == large_others  # reads, locks, updates, deletes: per batch
    assert set(small_inserts) == set(large_inserts)
    assert small_others[f"SELECT {Client._meta.db_table}"] <= 1  # one lock (none on SQLite)
    assert large_inserts[AuditEntry._meta.db_table] <= _most_inserts(AuditEntry, large)
    for table, inserts in large_inserts.items():
        if connection.vendor == "postgresql":
            assert inserts == 1, table  # one statement per table, whatever the batch
        else:  # SQLite binds at most 999 values per statement
            model = next(m for m in _models() if m._meta.db_table == table)
            assert inserts <= _most_inserts(model, 2 * large), table


def _models() -> list[Any]:
    return [
        Message,
        ActivityEvent,
        AuditEntry,
        Delivery,
        IdempotencyKey,
        LiveEvent,
        FollowUpDue,
        Conversation,
        ReplyNotification,
    ]


def _most_inserts(model: Any, rows: int) -> int:
    if connection.vendor == "postgresql":
        return 1
    columns = len([f for f in model._meta.concrete_fields if not f.primary_key or f.has_default()])
    return math.ceil(rows / (999 // columns))


def test_a_batch_with_one_answered_key_replays_it_and_writes_the_rest(agent, make_client):
    first, second = make_client(), make_client()
    (sent,) = messages_write(
        writes=[
            message_send_prepare(
                sender=agent, client_id=first.id, idempotency_key="k-1", meta=META, body="One"
            )
        ]  # type: ignore[list-item]
    )
    again = [
        message_send_prepare(sender=agent, client_id=c.id, idempotency_key=k, meta=META, body=b)
        for c, k, b in ((first, "k-1", "One"), (second, "k-2", "Two"))
    ]
    replayed, written = messages_write(writes=again)  # type: ignore[arg-type]
    assert replayed.replayed and replayed.message_id == sent.message_id
    assert replayed.response == sent.response
    assert not written.replayed and written.message is not None
    assert Message.objects.count() == 2
    assert AuditEntry.objects.filter(action="message.sent").count() == 2
    other = message_send_prepare(
        sender=agent, client_id=second.id, idempotency_key="k-1", meta=META, body="Other"
    )
    with pytest.raises(ValidationFailed, match="different request"):
        messages_write(writes=[other])  # type: ignore[list-item]
    assert Message.objects.count() == 2


def test_a_staff_key_and_a_client_key_never_meet(agent, client_obj):
    sent = messages_write(
        writes=[
            message_send_prepare(  # type: ignore[list-item]
                sender=agent, client_id=client_obj.id, idempotency_key="same", meta=META, body="Hi"
            ),
            MessageWrite(
                client=client_obj,
                direction=Direction.IN,
                body="Hi back",
                meta=META,
                idempotency_key="same",
                fingerprint=idempotency_fingerprint({"body": "Hi back", "in_reply_to": ""}),
            ),
        ]
    )
    assert [r.replayed for r in sent] == [False, False]
    assert IdempotencyKey.objects.filter(key="same").count() == 2


def test_nothing_is_written_when_the_check_under_the_lock_refuses(agent, client_obj):
    write = message_send_prepare(
        sender=agent, client_id=client_obj.id, idempotency_key="k", meta=META, body="Hi"
    )

    def refuse(now: Any) -> None:
        raise ValidationFailed("Not now.")

    with pytest.raises(ValidationFailed, match="Not now"):
        messages_write(writes=[write], check_locked=refuse)  # type: ignore[list-item]
    assert not Message.objects.exists() and not IdempotencyKey.objects.exists()
    assert not AuditEntry.objects.filter(action="message.sent").exists()
    assert not LiveEvent.objects.exists()


def test_one_key_twice_in_one_write_is_a_mistake_of_the_caller(agent, client_obj):
    write = message_send_prepare(
        sender=agent, client_id=client_obj.id, idempotency_key="k", meta=META, body="Hi"
    )
    with pytest.raises(ValueError, match="appears twice"):
        messages_write(writes=[write, write])  # type: ignore[list-item]
    assert not Message.objects.exists()
