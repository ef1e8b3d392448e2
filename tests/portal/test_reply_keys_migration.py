"""Upgrading moves the portal's reply keys into messaging's IdempotencyKey: a reply answered
before the upgrade is still replayed after it, and another body under its key is still 422."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from clientdesk.clients.models import Client
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import IdempotencyKey, Message
from clientdesk.messaging.services.idempotency import idempotency_fingerprint
from clientdesk.portal.services import portal_reply_create

# Outreach came after the move and builds on later messaging migrations: unapplied whole.
BEFORE = {
    "portal": "0001_portal_sessions",
    "messaging": "0006_message_template_edited",
    "outreach": None,
}


def _migrate(before: bool) -> tuple[MigrationExecutor, list[tuple[str, str | None]]]:
    """Every app at its latest migration; with `before`, portal and messaging just before theirs
    that move the keys."""
    executor = MigrationExecutor(connection)
    targets: list[tuple[str, str | None]] = [
        (app, BEFORE.get(app, name) if before else name)
        for app, name in executor.loader.graph.leaf_nodes()
    ]
    executor.migrate(targets)
    return executor, targets


@pytest.mark.django_db(transaction=True)
def test_a_reply_answered_before_the_upgrade_is_replayed_after_it():
    executor, targets = _migrate(before=True)
    try:
        old = executor.loader.project_state([t for t in targets if t[1] is not None]).apps
        client = old.get_model("clients", "Client").objects.create(
            external_id="MIG-1", first_name="Zoë", last_name="Müller", email="z@example.com"
        )
        message = old.get_model("messaging", "Message").objects.create(
            client=client, direction="in", body="Before", source="Before", created_at=timezone.now()
        )
        fingerprint = idempotency_fingerprint({"body": "Before", "in_reply_to": ""})
        old.get_model("portal", "PortalReplyKey").objects.create(
            client=client,
            key="k-before",
            fingerprint=fingerprint,
            message_id=message.id,
            created_at=timezone.now(),
        )
        # A key whose message is gone cannot be replayed: it is left behind.
        old.get_model("portal", "PortalReplyKey").objects.create(
            client=client,
            key="k-orphan",
            fingerprint=fingerprint,
            message_id=uuid.uuid4(),
            created_at=timezone.now(),
        )
    finally:
        _migrate(before=False)

    moved = IdempotencyKey.objects.get()
    assert (moved.client_id, moved.user_id, moved.key) == (client.id, None, "k-before")
    client_now = Client.objects.get(pk=client.id)
    again = portal_reply_create(
        client=client_now, body="Before", idempotency_key="k-before", meta=RequestMeta()
    )
    assert again.replayed and again.message.id == message.id
    with pytest.raises(ValidationFailed, match="different request"):
        portal_reply_create(
            client=client_now, body="Other", idempotency_key="k-before", meta=RequestMeta()
        )
    assert Message.objects.count() == 1
