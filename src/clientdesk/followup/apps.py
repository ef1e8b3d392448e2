"""Follow-up: awaiting-reply and needs-response clocks in business hours, the follow-up policy,
and the Messages page of conversations across clients."""

from django.apps import AppConfig


class FollowupConfig(AppConfig):
    name = "clientdesk.followup"
    label = "followup"

    def ready(self) -> None:
        from clientdesk.core.jobs import job_register
        from clientdesk.followup.notifications import reply_notifications_announced
        from clientdesk.followup.services import followup_messages_written, followup_overdue_job
        from clientdesk.messaging.hooks import messages_announced, messages_written

        messages_written.register(name="followup.clocks", run=followup_messages_written)
        messages_announced.register(
            name="followup.reply_notifications", run=reply_notifications_announced
        )
        # Due clocks are rows; the job asks to run again at the next due time (or at once
        # when a batch was full), and at least every 15 s for clocks started meanwhile.
        job_register(name="followup.overdue", run=followup_overdue_job, every_seconds=15.0)
