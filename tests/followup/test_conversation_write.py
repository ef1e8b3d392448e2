"""A one-client write reads the conversation first: it closes no clocks when the conversation
says none is running, and writes the conversation back with one UPDATE that keeps an overdue
flag the overdue job set after the read (on the side the write does not answer)."""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import Conversation, FollowUpDue
from clientdesk.messaging.models import Message, ReplyState
from clientdesk.messaging.services.sending import message_send
from tests.followup.helpers import client_writes
from tests.followup.test_clocks import round_the_clock  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def send(agent: Any, client: Any, **kwargs: Any) -> Message:
    result = message_send(
        sender=agent,
        client_id=client.id,
        body="Your statement is ready",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        **kwargs,
    )
    return Message.objects.get(pk=result.message_id)


def _statements(queries: CaptureQueriesContext, pattern: str) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if re.search(pattern, q["sql"], re.I | re.S)]


def test_a_send_with_no_clock_running_closes_none_and_writes_the_conversation_once(
    agent, client_obj
):
    send(agent, client_obj)  # the conversation exists from here
    with CaptureQueriesContext(connection) as queries:
        message = send(agent, client_obj)
    assert _statements(queries, r'^DELETE FROM "followup_followupdue"') == []
    assert _statements(queries, r'^UPDATE "messaging_message"') == []
    conversation_writes = _statements(queries, r'"followup_conversation"')
    assert len(conversation_writes) == 2, conversation_writes  # one read, one UPDATE
    assert (
        conversation_writes[0].startswith("SELECT") and "FOR UPDATE" not in conversation_writes[0]
    )
    assert conversation_writes[1].startswith("UPDATE")
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert conversation.last_message_id == message.id
    assert conversation.unanswered_in == 0


def test_the_first_message_of_a_client_makes_its_conversation(agent, make_client):
    client = make_client(first_name="New")
    with CaptureQueriesContext(connection) as queries:
        message = send(agent, client)
    assert _statements(queries, r'^DELETE FROM "followup_followupdue"') == []
    assert _statements(queries, r'^UPDATE "messaging_message"') == []
    conversation = Conversation.objects.get(pk=client.pk)
    assert conversation.last_message_id == message.id
    assert conversation.last_direction == "out"


def test_a_running_clock_is_still_closed(agent, client_obj, round_the_clock):  # noqa: F811
    asked = send(agent, client_obj, expects_reply=True)
    reply = client_writes(client_obj)
    asked.refresh_from_db()
    assert asked.reply_state == ReplyState.ANSWERED
    assert not FollowUpDue.objects.filter(message=asked).exists()
    # The reply opened a response clock; our next message answers it.
    reply.refresh_from_db()
    assert reply.reply_state == ReplyState.AWAITING
    send(agent, client_obj)
    reply.refresh_from_db()
    assert reply.reply_state == ReplyState.ANSWERED
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert conversation.response_due_at is None and conversation.reply_due_at is None


@contextmanager
def _before_the_conversation_update(client: Any, **change: Any) -> Iterator[None]:
    """Make `change` to the conversation on the same connection just before the writer's UPDATE
    of it: as the writer would see the overdue job's change committed after its read."""
    done: list[bool] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith('UPDATE "followup_conversation"') and not done:
            done.append(True)
            Conversation.objects.filter(pk=client.pk).update(**change)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def test_an_overdue_flag_set_after_the_read_on_the_other_side_is_kept(
    agent,
    client_obj,
    round_the_clock,  # noqa: F811
):
    asked = send(agent, client_obj, expects_reply=True)
    overdue = {"reply_overdue": True, "overdue_since": F("reply_due_at")}
    with _before_the_conversation_update(client_obj, **overdue):
        send(agent, client_obj)  # ours answers no reply clock: the flag must stay
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert conversation.reply_overdue is True
    assert conversation.reply_due_at == asked.reply_due_at
    assert conversation.overdue_since == asked.reply_due_at
    assert conversation.response_overdue is False


def test_a_side_the_write_answers_is_reset_whatever_the_row_says(
    agent,
    client_obj,
    round_the_clock,  # noqa: F811
):
    client_writes(client_obj)  # a response clock runs
    overdue = {"response_overdue": True, "overdue_since": timezone.now() - timedelta(minutes=1)}
    with _before_the_conversation_update(client_obj, **overdue):
        send(agent, client_obj)  # ours answers the client's message
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert conversation.response_overdue is False
    assert conversation.response_due_at is None
    assert conversation.overdue_since is None


def test_a_client_reply_keeps_a_response_flag_set_after_the_read(
    agent,
    client_obj,
    round_the_clock,  # noqa: F811
):
    first = client_writes(client_obj)  # opens the response clock
    overdue = {"response_overdue": True, "overdue_since": F("response_due_at")}
    with _before_the_conversation_update(client_obj, **overdue):
        client_writes(client_obj, "Anyone there?")  # answers none of the client's own clocks
    conversation = Conversation.objects.get(pk=client_obj.pk)
    first.refresh_from_db()
    assert conversation.response_overdue is True
    assert conversation.response_due_at == first.reply_due_at
    assert conversation.overdue_since == first.reply_due_at
    assert conversation.unanswered_in == 2
