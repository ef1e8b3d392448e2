import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent, AuditEntry
from clientdesk.core.errors import NotFound, PermissionDenied, ValidationFailed
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import IdempotencyKey, Message
from clientdesk.messaging.rendering import RenderFailed
from clientdesk.messaging.services.idempotency import idempotency_keys_prune
from clientdesk.messaging.services.sending import message_send
from tests.racing import race

META = RequestMeta(ip="203.0.113.9", user_agent="pytest-agent/1.0", request_id="req-123")


def send(sender, client, body="Hello {{firstName}}", key=None):
    return message_send(
        sender=sender,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()) if key is None else key,
        meta=META,
    )


@pytest.mark.django_db
def test_send_stores_message_activity_and_ledger_with_sender_metadata(agent, client_obj):
    result = send(agent, client_obj)

    message = Message.objects.get()
    assert result.message_id == message.id
    assert not result.replayed
    assert message.body == "Hello Zoë"
    assert message.source == "Hello {{firstName}}"
    assert message.variables == {"firstName": "Zoë"}
    assert message.sender == agent
    assert (message.request_ip, message.user_agent, message.request_id) == (
        "203.0.113.9",
        "pytest-agent/1.0",
        "req-123",
    )
    event = ActivityEvent.objects.get()
    assert (event.client, event.type, event.actor_user, event.subject_id) == (
        client_obj,
        "message.sent",
        agent,
        message.id,
    )
    assert event.actor_label == "Alex Agent"
    assert event.data["body"] == "Hello Zoë"
    record = AuditEntry.objects.get(action="message.sent")
    assert (record.action, record.object_id, record.actor_id) == (
        "message.sent",
        str(message.id),
        str(agent.pk),
    )
    assert result.response["id"] == str(message.id)
    assert result.response["sender"]["name"] == "Alex Agent"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["Viewer", None])
def test_users_without_the_permission_cannot_send(make_user, client_obj, role):
    with pytest.raises(PermissionDenied, match="Send a private message"):
        send(make_user(role), client_obj)
    assert Message.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["Administrator", "Manager", "Agent"])
def test_roles_with_the_permission_can_send(make_user, client_obj, role):
    send(make_user(role), client_obj)
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_unknown_client_is_not_found(agent):
    with pytest.raises(NotFound):
        message_send(
            sender=agent,
            client_id=uuid.uuid4(),
            body="hi",
            idempotency_key="k1",
            meta=META,
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "Type a message"),
        ("   \n\t ", "Type a message"),
        ("x" * 5001, "5,001 characters; the limit is 5,000"),
        ("Hi {{ nickname }}", "unknown variable {{nickname}}"),
        ("Hi {{ firstName ", "line 1, column 4"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_stored(
    agent, client_obj, body, message
):
    with pytest.raises(ValidationFailed) as caught:
        send(agent, client_obj, body=body)
    assert message in caught.value.detail
    assert Message.objects.count() == ActivityEvent.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    assert not AuditEntry.objects.filter(action="message.sent").exists()


@pytest.mark.django_db
def test_exactly_the_limit_is_accepted(agent, client_obj):
    send(agent, client_obj, body="x" * 5000)
    assert len(Message.objects.get().body) == 5000


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ünïcode"])
def test_malformed_idempotency_keys_are_refused(agent, client_obj, key):
    with pytest.raises(ValidationFailed, match="Idempotency-Key"):
        send(agent, client_obj, key=key)


@pytest.mark.django_db
def test_same_key_same_body_replays_the_first_result(agent, client_obj):
    first = send(agent, client_obj, key="compose-1")
    again = send(agent, client_obj, key="compose-1")
    assert again.replayed
    assert again.message_id == first.message_id
    assert again.response == first.response
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_same_key_other_body_is_refused(agent, client_obj, make_client):
    send(agent, client_obj, key="compose-1")
    with pytest.raises(ValidationFailed, match="different request"):
        send(agent, client_obj, body="Something else", key="compose-1")
    with pytest.raises(ValidationFailed, match="different request"):
        send(agent, make_client(), key="compose-1")
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_scoped_per_user(make_user, client_obj):
    first, second = make_user("Agent"), make_user("Agent")
    send(first, client_obj, key="shared-key")
    send(second, client_obj, key="shared-key")
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_keys_live_24_hours_then_expire(agent, client_obj):
    send(agent, client_obj, key="old-key")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert send(agent, client_obj, key="old-key").replayed
    assert idempotency_keys_prune() == 0
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    assert not send(agent, client_obj, key="old-key").replayed
    assert Message.objects.count() == 2
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_keys_prune() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_with_one_key_make_exactly_one_message(agent, client_obj):
    threads = 8
    results, errors = race(threads, lambda n: send(agent, client_obj, key="same-compose"))

    assert errors == []
    assert len(results) == threads
    assert len({r.message_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert Message.objects.count() == 1
    assert ActivityEvent.objects.count() == 1
    assert AuditEntry.objects.filter(action="message.sent").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_with_different_keys_all_land_and_keep_the_ledger_chain(agent, client_obj):
    from clientdesk.audit.selectors import audit_verify
    from clientdesk.audit.services import audit_sequence

    threads = 6

    def sends(n):
        for i in range(3):
            send(agent, client_obj, body=f"Message {n}-{i}")

    _, errors = race(threads, sends)

    assert errors == []
    assert Message.objects.count() == threads * 3
    # The ledger also holds the creation of the client (and of the sender's token, if any).
    setup = AuditEntry.objects.exclude(action="message.sent").count()
    assert audit_sequence() == threads * 3 + setup
    check = audit_verify()
    assert check.intact, check.problem
    assert check.checked == threads * 3 + setup


@pytest.mark.django_db
def test_render_failure_reports_missing_variables(agent, make_client):
    client = make_client(email="")
    with pytest.raises(RenderFailed) as caught:
        send(agent, client, body="Write to {{email}}")
    assert caught.value.extra["missing_variables"] == ["email"]
