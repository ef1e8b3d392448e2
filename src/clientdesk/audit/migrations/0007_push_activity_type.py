from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0006_consent_activity_type"),
    ]

    operations = [
        migrations.AlterField(
            model_name="activityevent",
            name="type",
            field=models.CharField(
                choices=[
                    ("message.sent", "Message sent"),
                    ("message.delivered", "Message delivered"),
                    ("message.delivery_failed", "Delivery failed"),
                    ("message.reply_overdue", "Reply overdue"),
                    ("message.response_overdue", "Response overdue"),
                    ("message.read", "Read by the client"),
                    ("message.received", "Reply from the client"),
                    ("client.consent_changed", "Outreach consent changed"),
                    ("push.subscription_expired", "Push subscription expired"),
                ],
                max_length=40,
            ),
        ),
    ]
