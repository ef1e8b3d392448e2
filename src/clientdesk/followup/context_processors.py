"""On every page: the banner administrators see while the stored follow-up policy cannot be met,
and the count of the user's unread replies."""

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from clientdesk.followup.notifications import notifications_unread_count
from clientdesk.followup.permissions import FollowupPermission
from clientdesk.followup.policy import policy_problem
from clientdesk.followup.selectors import policy_get
from clientdesk.messaging.permissions import MessagingPermission

VIEW_MESSAGE = MessagingPermission.VIEW_MESSAGE


def followup_alert(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if (
        user is None
        or not user.is_authenticated
        or not user.has_perm(FollowupPermission.MANAGE_FOLLOWUP_POLICY)
    ):
        return {}
    problem = policy_problem(policy_get())
    return {"followup_alert": problem} if problem else {}


def unread_replies(request: HttpRequest) -> dict[str, Any]:
    """The count on "Messages" and in the tab's title: the user's unread reply notifications,
    counted once, and only when a template shows it (partials do not)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm(VIEW_MESSAGE):
        return {}
    return {"unread_replies": SimpleLazyObject(lambda: notifications_unread_count(user=user))}
