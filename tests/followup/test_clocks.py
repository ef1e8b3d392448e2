"""The two clocks through the real send path and the real overdue job: start, answer, overdue,
each transition once; the conversation row follows."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent, ActivityType
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.models import LiveEvent
from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import Conversation, FollowUpDue
from clientdesk.followup.selectors import policy_get
from clientdesk.followup.services import followup_overdue_run
from clientdesk.messaging.models import Message, ReplyState
from clientdesk.messaging.services.sending import message_send
from tests.followup.helpers import client_writes

pytestmark = pytest.mark.django_db


def send(agent, client, body="Please send your passport", **kwargs):
    result = message_send(
        sender=agent,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        **kwargs,
    )
    return Message.objects.get(pk=result.message_id)


@pytest.fixture
def round_the_clock():
    """Open every hour of every day, so due times are plain arithmetic. A day's hours end at
    23:59, so the policy's zone is one where it is about 08:00 now: the few hours these tests
    add never cross that closed minute before midnight, whatever time the suite runs."""
    policy = policy_get()
    policy.business_hours = {
        d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    offset = (8 - timezone.now().astimezone(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    # IANA's Etc/GMT zones count the other way round: Etc/GMT-8 is UTC+8.
    policy.timezone = f"Etc/GMT{-offset:+d}" if offset else "UTC"
    policy.reply_window_hours = 2
    policy.response_window_hours = 1
    policy.save()
    return policy


def test_expects_reply_gets_a_due_time_from_the_policy(agent, client_obj, round_the_clock):
    message = send(agent, client_obj, expects_reply=True)
    assert message.reply_state == ReplyState.AWAITING
    assert message.reply_due_at - message.created_at == timedelta(hours=2)
    assert FollowUpDue.objects.get(message=message).due_at == message.reply_due_at
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert conversation.reply_due_at == message.reply_due_at
    assert conversation.last_message == message


def test_without_expects_reply_no_clock_runs(agent, client_obj):
    message = send(agent, client_obj)
    assert message.reply_state == ReplyState.NONE
    assert message.reply_due_at is None
    assert not FollowUpDue.objects.exists()


def test_explicit_due_time_wins_and_is_checked(agent, client_obj):
    due = timezone.now() + timedelta(minutes=5)
    assert send(agent, client_obj, expects_reply=True, reply_due_at=due).reply_due_at == due
    for bad, field in [
        (timezone.now() - timedelta(seconds=1), "reply_due_at"),
        (timezone.now() + timedelta(days=400), "reply_due_at"),
        (datetime(2030, 1, 1), "reply_due_at"),
    ]:
        with pytest.raises(ValidationFailed) as error:
            send(agent, client_obj, expects_reply=True, reply_due_at=bad)
        assert field in error.value.extra["errors"]
    with pytest.raises(ValidationFailed):
        send(agent, client_obj, reply_due_at=due)


def test_a_client_reply_answers_every_waiting_message(agent, client_obj, make_client):
    first = send(agent, client_obj, expects_reply=True)
    second = send(agent, client_obj, expects_reply=True)
    other = send(agent, make_client(), expects_reply=True)
    reply = client_writes(client_obj)
    for message in (first, second):
        message.refresh_from_db()
        assert message.reply_state == ReplyState.ANSWERED
        assert message.answered_at == reply.created_at
    other.refresh_from_db()
    assert other.reply_state == ReplyState.AWAITING  # another client's clock runs on
    # Left running: the other client's clock, and ours to respond to this reply.
    assert set(FollowUpDue.objects.values_list("message", flat=True)) == {other.id, reply.id}
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert conversation.reply_due_at is None
    assert conversation.unanswered_in == 1


def test_a_client_message_opens_one_response_clock_until_staff_answer(
    agent, client_obj, round_the_clock
):
    first = client_writes(client_obj, "Hello?")
    second = client_writes(client_obj, "Anyone there?")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.reply_state == ReplyState.AWAITING
    assert first.reply_due_at - first.created_at == timedelta(hours=1)
    # The clock runs from the oldest unanswered message; later ones do not restart it.
    assert second.reply_state == ReplyState.NONE
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert (conversation.unanswered_in, conversation.response_due_at) == (2, first.reply_due_at)

    send(agent, client_obj, "We are on it")
    first.refresh_from_db()
    assert first.reply_state == ReplyState.ANSWERED
    conversation.refresh_from_db()
    assert (conversation.unanswered_in, conversation.response_due_at) == (0, None)
    assert not FollowUpDue.objects.exists()


def test_past_due_turns_overdue_once(agent, client_obj, round_the_clock):
    message = send(agent, client_obj, expects_reply=True)
    assert followup_overdue_run() == message.reply_due_at  # not due yet: says when
    later = message.reply_due_at + timedelta(seconds=1)
    assert followup_overdue_run(now=later) is None
    assert followup_overdue_run(now=later) is None
    message.refresh_from_db()
    assert message.reply_state == ReplyState.OVERDUE
    events = ActivityEvent.objects.filter(type=ActivityType.REPLY_OVERDUE, subject_id=message.id)
    assert events.count() == 1
    (live,) = LiveEvent.objects.filter(type="message.reply_overdue")
    assert live.client_id == client_obj.id
    assert live.data["id"] == str(message.id) and live.data["reply_state"] == "overdue"
    conversation = Conversation.objects.get(pk=client_obj.pk)
    assert conversation.reply_overdue and conversation.overdue_since == message.reply_due_at

    # A late reply still answers it, and the conversation leaves the Overdue view.
    client_writes(client_obj)
    message.refresh_from_db()
    assert message.reply_state == ReplyState.ANSWERED
    conversation.refresh_from_db()
    assert not conversation.reply_overdue and conversation.overdue_since is None


def test_an_answered_clock_never_turns_overdue(agent, client_obj, round_the_clock):
    message = send(agent, client_obj, expects_reply=True)
    client_writes(client_obj)
    followup_overdue_run(now=message.reply_due_at + timedelta(hours=1))
    message.refresh_from_db()
    assert message.reply_state == ReplyState.ANSWERED
    assert not ActivityEvent.objects.filter(type=ActivityType.REPLY_OVERDUE).exists()


def test_response_clock_turns_overdue(client_obj, round_the_clock):
    message = client_writes(client_obj)
    message.refresh_from_db()
    followup_overdue_run(now=message.reply_due_at + timedelta(seconds=1))
    message.refresh_from_db()
    assert message.reply_state == ReplyState.OVERDUE
    assert ActivityEvent.objects.filter(type=ActivityType.RESPONSE_OVERDUE).count() == 1
    assert Conversation.objects.get(pk=client_obj.pk).response_overdue


def test_a_batch_larger_than_one_run_is_finished_by_the_next(
    agent, make_client, round_the_clock, monkeypatch
):
    monkeypatch.setattr("clientdesk.followup.services.OVERDUE_BATCH", 3)
    messages = [send(agent, make_client(), expects_reply=True) for _ in range(7)]
    later = max(m.reply_due_at for m in messages) + timedelta(seconds=1)
    assert followup_overdue_run(now=later) == later  # full batch: run again at once
    assert followup_overdue_run(now=later) == later
    assert followup_overdue_run(now=later) is None
    assert Message.objects.filter(reply_state=ReplyState.OVERDUE).count() == 7
    assert ActivityEvent.objects.filter(type=ActivityType.REPLY_OVERDUE).count() == 7


def test_due_time_in_business_hours_with_holidays(agent, client_obj):
    policy = policy_get()
    policy.timezone = "Europe/Berlin"
    policy.holidays = "DE"
    policy.reply_window_hours = 2
    policy.save()
    # Thu 24 Dec 2026 16:00 Berlin: one hour that day, then Christmas and a weekend.
    sent = datetime(2026, 12, 24, 15, 0, tzinfo=UTC)
    from clientdesk.followup.policy import reply_due

    assert reply_due(policy, sent) == datetime(2026, 12, 28, 9, 0, tzinfo=UTC)
