import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_reply_keys_to_messaging"),
    ]

    operations = [
        migrations.AddField(
            model_name="portallink",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="PortalLinkRequest",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("email_digest", models.CharField(max_length=64)),
                ("remote_address", models.CharField(max_length=45)),
                ("created_at", models.DateTimeField()),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["email_digest", "created_at"], name="portal_linkreq_email_idx"
                    ),
                    models.Index(
                        fields=["remote_address", "created_at"], name="portal_linkreq_addr_idx"
                    ),
                    models.Index(fields=["created_at"], name="portal_linkreq_created_idx"),
                ],
            },
        ),
        migrations.CreateModel(
            name="StreamLease",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("holder", models.CharField(max_length=80)),
                ("owner", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
            ],
            options={
                "indexes": [
                    models.Index(fields=["holder", "expires_at"], name="portal_lease_holder_idx"),
                    models.Index(fields=["owner"], name="portal_lease_owner_idx"),
                ],
            },
        ),
    ]
