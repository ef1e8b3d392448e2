"""A client's reply keys move to messaging's IdempotencyKey, which holds every author's keys: the
one writer of messages stores and replays them all."""

from typing import Any

from django.db import migrations


def move_reply_keys(apps: Any, schema_editor: Any) -> None:
    PortalReplyKey = apps.get_model("portal", "PortalReplyKey")
    IdempotencyKey = apps.get_model("messaging", "IdempotencyKey")
    Message = apps.get_model("messaging", "Message")
    IdempotencyKey.objects.bulk_create(
        (
            # A replay of a reply shows the message as it is now, so no answer is stored.
            IdempotencyKey(
                client_id=row.client_id,
                key=row.key,
                fingerprint=row.fingerprint,
                message_id=row.message_id,
                created_at=row.created_at,
            )
            for row in PortalReplyKey.objects.filter(
                message_id__in=Message.objects.values("id")
            ).iterator()
        ),
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_portal_sessions"),
        ("messaging", "0007_idempotency_keys_of_clients"),
    ]

    operations = [
        migrations.RunPython(move_reply_keys, migrations.RunPython.noop),
        migrations.DeleteModel(name="PortalReplyKey"),
    ]
