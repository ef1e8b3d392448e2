"""Permissions of the follow-up app: the policy is the Administrator's alone."""

from clientdesk.core.permissions import AppPermission


class FollowupPermission(AppPermission):
    MANAGE_FOLLOWUP_POLICY = "followup.manage_followup_policy", "Manage follow-up policy"
