import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0004_short_word_search"),
        ("delivery", "0003_delivery_order_by_channel"),
    ]

    operations = [
        migrations.CreateModel(
            name="PushSubscription",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("endpoint", models.URLField(max_length=2000, unique=True)),
                (
                    "p256dh",
                    models.CharField(
                        help_text="The device's P-256 key, base64url.", max_length=100
                    ),
                ),
                (
                    "auth",
                    models.CharField(help_text="The 16-byte authentication secret.", max_length=40),
                ),
                ("expiration_time", models.DateTimeField(blank=True, null=True)),
                ("user_agent", models.CharField(blank=True, max_length=300)),
                ("created_at", models.DateTimeField()),
                ("updated_at", models.DateTimeField()),
                ("last_receipt_at", models.DateTimeField(blank=True, null=True)),
                (
                    "confirmed_through",
                    models.DateTimeField(
                        blank=True,
                        help_text="When the newest push the device confirmed was queued.",
                        null=True,
                    ),
                ),
                ("unconfirmed_pushes", models.PositiveIntegerField(default=0)),
                (
                    "client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="push_subscriptions",
                        to="clients.client",
                    ),
                ),
            ],
            options={
                "ordering": ["client", "created_at"],
                "indexes": [models.Index(fields=["client", "created_at"], name="push_client_idx")],
            },
        ),
        migrations.AlterField(
            model_name="delivery",
            name="channel",
            field=models.CharField(
                choices=[("webhook", "Webhook"), ("email", "Email"), ("push", "Web Push")],
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="delivery",
            name="push_subscription",
            field=models.ForeignKey(
                blank=True,
                help_text="The device a push goes to (push channel only).",
                null=True,
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="deliveries",
                to="delivery.pushsubscription",
            ),
        ),
    ]
