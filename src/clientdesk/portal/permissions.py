"""Permissions of the portal app and the roles that hold them."""

from clientdesk.accounts.roles import Role
from clientdesk.core.permissions import AppPermission


class PortalPermission(AppPermission):
    ISSUE_SESSION = "portal.issue_session", "Issue client portal sessions"


ROLE_GRANTS = {Role.INTEGRATION: [PortalPermission.ISSUE_SESSION]}
