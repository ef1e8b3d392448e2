"""A client's reply is written by the one writer of messages, under the same idempotency rules as
a staff send: one key form, replays that survive what would refuse the request now, racing
duplicates that make one message, keys per author that live 24 hours."""

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clientdesk.audit.models import ActivityEvent, AuditEntry
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.models import LiveEvent
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Direction, IdempotencyKey, Message
from clientdesk.messaging.services.idempotency import idempotency_keys_prune
from clientdesk.portal.services import TooManyRequests, portal_reply_create
from tests.portal.conftest import reply
from tests.racing import race
from tests.sending import send_text

META = RequestMeta(ip="192.0.2.4", user_agent="cabinet/1.0", request_id="req-r")


def answer(client, body="Here it is", key="r-1", **extra):
    return portal_reply_create(client=client, body=body, idempotency_key=key, meta=META, **extra)


def nothing_written() -> bool:
    return not (
        Message.objects.filter(direction=Direction.IN).exists()
        or IdempotencyKey.objects.filter(client__isnull=False).exists()
        or AuditEntry.objects.filter(action="message.received").exists()
        or LiveEvent.objects.exists()
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key", ["", " ", "k 1", "k\n", "\nk", "k\t", "ü", "k\u00a0", "x" * 256, "\x7f", "\x00"]
)
def test_a_key_of_any_other_form_is_refused_as_for_a_send(client_obj, agent, key):
    with pytest.raises(ValidationFailed) as refused:
        answer(client_obj, key=key)
    assert "Idempotency-Key" in refused.value.extra["errors"]
    with pytest.raises(ValidationFailed) as refused_send:
        send_text_with_key(agent, client_obj, key)
    assert refused_send.value.detail == refused.value.detail
    assert nothing_written()


def send_text_with_key(agent, client, key):
    from clientdesk.messaging.services.sending import message_send

    return message_send(
        sender=agent, client_id=client.id, body="Hi", idempotency_key=key, meta=META
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("", "Type a reply"),
        (" \n\t", "Type a reply"),
        ("x" * 5001, "The reply is 5,001 characters; the limit is 5,000."),
        ("nul \x00 inside", "NUL"),
        ("lone \udc00 surrogate", "surrogate"),
    ],
)
def test_the_text_rule_is_the_staff_one(client_obj, agent, body, says):
    with pytest.raises(ValidationFailed) as refused:
        answer(client_obj, body=body)
    assert says in refused.value.detail and "body" in refused.value.extra["errors"]
    with pytest.raises(ValidationFailed) as refused_send:
        send_text(agent, client_obj, body)
    assert refused_send.value.extra["errors"].keys() == refused.value.extra["errors"].keys()
    assert refused_send.value.detail == refused.value.detail.replace("reply", "message")
    assert nothing_written()


@pytest.mark.django_db
def test_a_retry_over_the_rate_limit_still_gets_its_reply(client_obj, settings):
    settings.PORTAL_REPLIES_PER_MINUTE = 2
    first = answer(client_obj, body="one", key="a")
    answer(client_obj, body="two", key="b")
    with pytest.raises(TooManyRequests):
        answer(client_obj, body="three", key="c")
    again = answer(client_obj, body="one", key="a")
    assert again.replayed and again.message.id == first.message.id
    with pytest.raises(ValidationFailed, match="different request"):
        answer(client_obj, body="not one", key="a")
    assert Message.objects.filter(direction=Direction.IN).count() == 2


@pytest.mark.django_db
def test_a_retry_with_another_in_reply_to_is_another_request(client_obj, agent):
    asked = send_text(agent, client_obj, "Your passport?")
    answer(client_obj, key="a", in_reply_to=asked.message_id)
    with pytest.raises(ValidationFailed, match="different request"):
        answer(client_obj, key="a")
    with pytest.raises(ValidationFailed, match="different request"):
        answer(client_obj, key="a", in_reply_to=uuid.uuid4())  # unknown: still the key's answer
    assert Message.objects.filter(direction=Direction.IN).count() == 1


@pytest.mark.django_db
def test_reply_keys_live_24_hours_like_send_keys(client_obj):
    first = answer(client_obj, key="old")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert answer(client_obj, key="old").message.id == first.message.id
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    assert not answer(client_obj, key="old").replayed
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_keys_prune() == 1
    assert Message.objects.filter(direction=Direction.IN).count() == 2


@pytest.mark.django_db
def test_keys_are_per_author(client_obj, make_client, agent, portal_for):
    other = make_client()
    assert reply(portal_for(client_obj), "mine", key="same").status_code == 201
    assert reply(portal_for(other), "theirs", key="same").status_code == 201
    assert not send_text_with_key(agent, client_obj, "same").replayed
    assert IdempotencyKey.objects.filter(key="same").count() == 3


@pytest.mark.django_db(transaction=True)
def test_racing_replies_with_one_key_make_one_message(client_obj):
    threads = 8
    results, errors = race(threads, lambda n: answer(client_obj, body="Racing", key="race"))
    assert errors == []
    assert len(results) == threads
    assert len({r.message.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert Message.objects.filter(direction=Direction.IN).count() == 1
    assert ActivityEvent.objects.filter(type="message.received").count() == 1
    assert AuditEntry.objects.filter(action="message.received").count() == 1
    assert LiveEvent.objects.filter(type="message.created").count() == 1


@pytest.mark.django_db
@override_settings(PORTAL_REPLIES_PER_MINUTE=1000)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.text(max_size=300))
def test_any_key_is_either_the_form_or_refused_before_writing(client_obj, key):
    valid = 1 <= len(key) <= 255 and all("\x21" <= c <= "\x7e" for c in key)
    try:
        answer(client_obj, key=key)
    except ValidationFailed as refused:
        assert not valid and "Idempotency-Key" in refused.extra["errors"]
        return
    assert valid
    assert IdempotencyKey.objects.filter(client=client_obj, key=key).exists()
