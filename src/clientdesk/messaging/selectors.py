"""Reads for messaging."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.errors import NotFound, PermissionDenied
from clientdesk.messaging.models import Message

VIEW_PERMISSION = "messaging.view_message"


def check_can_view(user: User) -> None:
    if not user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied("You need the 'Can view message' permission to read messages.")


def client_messages(*, user: User, client: Client) -> QuerySet[Message]:
    check_can_view(user)
    return (
        Message.objects.filter(client=client)
        .select_related("sender")
        .order_by("-created_at", "-id")
    )


def message_get(*, user: User, message_id: str) -> Message:
    check_can_view(user)
    try:
        return Message.objects.select_related("sender", "client").get(pk=message_id)
    except (Message.DoesNotExist, ValidationError, ValueError) as error:
        raise NotFound("No such message.") from error
