"""Permissions of the audit app and the roles that hold them."""

from clientdesk.accounts.roles import Role
from clientdesk.core.permissions import AppPermission


class AuditPermission(AppPermission):
    # A client's timeline shows its messages, so it goes to the roles that read messages.
    VIEW_ACTIVITY = "audit.view_activityevent"
    # The ledger is the Administrator's.
    VIEW_AUDIT_RECORD = "audit.view_auditrecord"


ROLE_GRANTS = {
    Role.MANAGER: [AuditPermission.VIEW_ACTIVITY],
    Role.AGENT: [AuditPermission.VIEW_ACTIVITY],
    Role.VIEWER: [AuditPermission.VIEW_ACTIVITY],
    Role.INTEGRATION: [AuditPermission.VIEW_ACTIVITY],
}
