"""The banner administrators see on every page while the stored follow-up policy cannot be met."""

from typing import Any

from django.http import HttpRequest

from clientdesk.followup.permissions import FollowupPermission
from clientdesk.followup.policy import policy_problem
from clientdesk.followup.selectors import policy_get


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
