"""Follow-up: awaiting-reply and needs-response clocks in business hours, the follow-up policy,
and the Messages page of conversations across clients."""

from django.apps import AppConfig


class FollowupConfig(AppConfig):
    name = "clientdesk.followup"
    label = "followup"

    def ready(self) -> None:
        from clientdesk.followup.services import followup_message_written
        from clientdesk.messaging.hooks import message_written_hook_register

        message_written_hook_register(name="followup.clocks", hook=followup_message_written)
