"""The live-event order lock is global on PostgreSQL, so a transaction that holds it must not
wait for anything else: after taking it, a transaction may only insert its live events and
notify, and nothing may be left to check at COMMIT. A foreign-key check at COMMIT once
deadlocked a send, which held its client's row and waited for the lock, with a worker that held
the lock and, committing, waited for the client's row. Each flow that records live events is
checked statement by statement; test_worker_processes runs sends beside two real workers."""

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientdesk.clients.models import Client
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery, OutgoingEndpoint
from clientdesk.delivery.outcomes import Outcome
from clientdesk.delivery.services.queue import (
    Attempted,
    attempts_record,
    deliveries_claim,
    delivery_retry_now,
)
from clientdesk.followup.services import followup_overdue_run
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from clientdesk.portal.services import portal_message_read, portal_reply_create

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgres" not in __import__("os").environ.get("DATABASE_URL", ""),
        reason="the order lock is PostgreSQL's; SQLite has one writer at a time",
    ),
]

LOCK = re.compile(r"pg_advisory_xact_lock\(\s*1279874629\s*\)")
# Django's foreign keys are checked at COMMIT unless made immediate before the lock is taken.
CHECKED = re.compile(r"SET CONSTRAINTS ALL IMMEDIATE", re.I)
# What a transaction may still do once it holds the lock.
ALLOWED_AFTER = re.compile(r'^\s*(INSERT INTO "core_liveevent"|SELECT pg_notify\()', re.I)
WAITS = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b|\bFOR (UPDATE|NO KEY UPDATE|SHARE|KEY SHARE)\b")


def after_lock(queries: list[dict[str, Any]]) -> list[str]:
    """Statements that could wait on another transaction, run while the order lock was held.
    (Statements after the commit may appear too; a flow's own transaction ends the capture.)"""
    held, checked, offending = False, False, []
    for query in queries:
        sql = query["sql"]
        checked = checked or bool(CHECKED.search(sql))
        if LOCK.search(sql):
            held = True
            if not checked:
                offending.append("the lock taken with foreign-key checks left for COMMIT")
        elif held and not ALLOWED_AFTER.match(sql) and WAITS.search(sql):
            offending.append(sql[:160])
    return offending


def send(agent: Any, client: Client, **extra: Any) -> uuid.UUID:
    return message_send(
        sender=agent,
        client_id=client.id,
        body="Please send the signed form",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        **extra,
    ).message_id


def test_nothing_waits_behind_the_order_lock_in_any_flow(endpoint, agent, client_obj):
    flows: dict[str, list[dict[str, Any]]] = {}

    with CaptureQueriesContext(connection) as q:
        sent = send(agent, client_obj, expects_reply=True)
    flows["send"] = q.captured_queries

    for name, outcome in [
        ("attempt failed", Outcome(ok=False, duration_ms=3, status_code=503, error="503")),
        ("attempt delivered", Outcome(ok=True, duration_ms=3, status_code=200)),
    ]:
        (leased,) = [
            d for d in deliveries_claim(worker="w1", limit=10).deliveries if d.subject_id == sent
        ]
        with CaptureQueriesContext(connection) as q:
            attempts_record(worker="w1", attempted=[Attempted(leased, timezone.now(), outcome)])
        flows[name] = q.captured_queries
        Delivery.objects.filter(pk=leased.pk, status="pending").update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )

    with CaptureQueriesContext(connection) as q:
        portal_message_read(client=client_obj, message_id=sent)
    flows["portal read"] = q.captured_queries

    with CaptureQueriesContext(connection) as q:
        portal_reply_create(
            client=client_obj,
            body="Here it is",
            idempotency_key=str(uuid.uuid4()),
            in_reply_to=sent,
            meta=RequestMeta(),
        )
    flows["portal reply"] = q.captured_queries

    later = send(agent, client_obj, expects_reply=True)
    Message.objects.filter(pk=later).update(reply_due_at=timezone.now() - timedelta(minutes=1))
    from clientdesk.followup.models import FollowUpDue

    FollowUpDue.objects.filter(message_id=later).update(
        due_at=timezone.now() - timedelta(minutes=1)
    )
    with CaptureQueriesContext(connection) as q:
        followup_overdue_run()
    flows["overdue"] = q.captured_queries
    assert Message.objects.get(pk=later).reply_state == "overdue"

    OutgoingEndpoint.objects.filter(pk=1).update(enabled=True)
    failed = Delivery.objects.filter(subject_id=later).first()
    assert failed is not None
    Delivery.objects.filter(pk=failed.pk).update(status="failed", next_attempt_at=None)
    with CaptureQueriesContext(connection) as q:
        delivery_retry_now(delivery_id=failed.pk, actor=agent)
    flows["retry"] = q.captured_queries

    for name, queries in flows.items():
        assert any(LOCK.search(x["sql"]) for x in queries), f"{name}: no live event recorded"
        assert after_lock(queries) == [], name
