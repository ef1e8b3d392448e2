"""A client's consent to outreach: the one write (ledger record with the real actor, the
timeline entry, nothing on a repeat) and the signed token of the unsubscribe link."""

import re
import uuid

import pytest
from django.core import signing

from clientdesk.audit.models import ActivityEvent, ActivityType, ActorType, AuditEntry
from clientdesk.audit.sentences import activity_sentence
from clientdesk.clients.consent import (
    client_consent_change,
    unsubscribe_token,
    unsubscribe_token_client,
)
from clientdesk.clients.models import Client
from clientdesk.core.errors import NotFound, PermissionDenied
from tests.racing import race

pytestmark = pytest.mark.django_db


def _entries():
    return list(AuditEntry.objects.filter(action="client.consent_changed").order_by("id"))


def test_the_client_opting_out_is_recorded_with_the_client_as_actor(make_client):
    client = make_client()
    changed = client_consent_change(
        client_id=client.id, opt_out=True, actor=None, by_client=True, via="unsubscribe_link"
    )
    assert changed.outreach_opt_out is True
    client.refresh_from_db()
    assert client.outreach_opt_out is True
    assert client.outreach_opt_out_at is not None
    (entry,) = _entries()
    assert entry.actor_type == ActorType.CLIENT
    assert entry.actor_id == str(client.pk)
    assert entry.object_id == str(client.pk)
    assert entry.data["after"] == {"outreach_opt_out": True}
    assert entry.data["via"] == "unsubscribe_link"
    (event,) = ActivityEvent.objects.filter(client=client, type=ActivityType.CONSENT_CHANGED)
    assert event.actor_type == ActorType.CLIENT
    assert event.data == {"outreach_opt_out": True, "via": "unsubscribe_link"}
    assert "outreach off" in activity_sentence(event)


def test_a_repeat_writes_nothing_and_opting_in_again_clears_the_time(make_client):
    client = make_client()
    for _ in range(3):
        client_consent_change(
            client_id=client.id, opt_out=True, actor=None, by_client=True, via="cabinet"
        )
    assert len(_entries()) == 1
    first_at = Client.objects.get(pk=client.pk).outreach_opt_out_at
    client_consent_change(client_id=client.id, opt_out=False, actor=None, by_client=True, via="x")
    client.refresh_from_db()
    assert (client.outreach_opt_out, client.outreach_opt_out_at) == (False, None)
    assert first_at is not None
    assert [e.data["after"]["outreach_opt_out"] for e in _entries()] == [True, False]
    assert ActivityEvent.objects.filter(type=ActivityType.CONSENT_CHANGED).count() == 2


def test_staff_with_change_client_act_as_themselves(agent, make_client):
    client = make_client()
    client_consent_change(
        client_id=client.id, opt_out=True, actor=agent, by_client=False, via="api"
    )
    (entry,) = _entries()
    assert (entry.actor_type, entry.actor_id) == (ActorType.STAFF, str(agent.pk))
    event = ActivityEvent.objects.get(type=ActivityType.CONSENT_CHANGED)
    assert event.actor_user_id == agent.pk


def test_staff_without_change_client_are_refused_and_nothing_changes(viewer, make_client):
    client = make_client()
    with pytest.raises(PermissionDenied):
        client_consent_change(
            client_id=client.id, opt_out=True, actor=viewer, by_client=False, via="api"
        )
    client.refresh_from_db()
    assert client.outreach_opt_out is False
    assert not _entries()


def test_a_change_by_the_client_has_no_staff_actor(agent, make_client):
    client = make_client()
    with pytest.raises(ValueError):
        client_consent_change(
            client_id=client.id, opt_out=True, actor=agent, by_client=True, via="cabinet"
        )
    assert not _entries()


def test_an_unknown_client_is_not_found(agent):
    with pytest.raises(NotFound):
        client_consent_change(
            client_id=uuid.uuid4(), opt_out=True, actor=None, by_client=True, via="x"
        )
    with pytest.raises(NotFound):
        client_consent_change(
            client_id="not-a-uuid", opt_out=True, actor=None, by_client=True, via="x"
        )


def test_the_token_names_its_client_and_nothing_else(make_client):
    one, other = make_client(), make_client()
    token = unsubscribe_token(one)
    assert unsubscribe_token_client(token) == one
    assert unsubscribe_token_client(unsubscribe_token(other)) == other
    value, signature = token.split(".")
    # Another client's id under this client's signature, or an altered signature: refused.
    assert unsubscribe_token_client(f"{other.pk.hex}.{signature}") is None
    flipped = signature[:-1] + ("B" if signature.endswith("A") else "A")
    assert unsubscribe_token_client(f"{value}.{flipped}") is None
    assert unsubscribe_token_client(value) is None
    for hostile in ["", ":", "\x00", "é" * 10_000, token + "\x00", f"{value}.{signature}.x"]:
        assert unsubscribe_token_client(hostile) is None
    # The same id signed for another purpose (another salt) opens nothing.
    assert unsubscribe_token_client(signing.Signer(salt="other", sep=".").sign(one.pk.hex)) is None
    assert re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{20,}", token)
    assert unsubscribe_token_client(signing.Signer().sign(one.pk.hex)) is None


def test_a_token_of_a_deleted_client_names_nobody(make_client):
    stranger = Client(pk=uuid.uuid4())
    assert unsubscribe_token_client(unsubscribe_token(stranger)) is None


@pytest.mark.django_db(transaction=True)
def test_racing_unsubscribes_change_the_client_once(make_client):
    """Eight one-click POSTs arriving together (a mail system retrying): one change, one record."""
    client = make_client()
    results, errors = race(
        8,
        lambda n: client_consent_change(
            client_id=client.id, opt_out=True, actor=None, by_client=True, via="unsubscribe_link"
        ),
    )
    assert not errors, errors
    assert {r.outreach_opt_out for r in results} == {True}
    assert len(_entries()) == 1
    assert (
        ActivityEvent.objects.filter(client=client, type=ActivityType.CONSENT_CHANGED).count() == 1
    )
