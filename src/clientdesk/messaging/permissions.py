"""Permissions of the messaging app and the roles that hold them."""

from clientdesk.accounts.roles import Role
from clientdesk.core.permissions import AppPermission


class MessagingPermission(AppPermission):
    SEND_PRIVATE_MESSAGE = "messaging.send_private_message", "Send a private message"
    VIEW_MESSAGE = "messaging.view_message"
    MANAGE_TEMPLATES = "messaging.manage_templates", "Manage message templates"
    EXPORT_MESSAGES = "messaging.export_messages", "Export message logs"


ROLE_GRANTS = {
    Role.MANAGER: [
        MessagingPermission.SEND_PRIVATE_MESSAGE,
        MessagingPermission.VIEW_MESSAGE,
        MessagingPermission.MANAGE_TEMPLATES,
        MessagingPermission.EXPORT_MESSAGES,
    ],
    Role.AGENT: [MessagingPermission.SEND_PRIVATE_MESSAGE, MessagingPermission.VIEW_MESSAGE],
    Role.VIEWER: [MessagingPermission.VIEW_MESSAGE],
    Role.INTEGRATION: [MessagingPermission.VIEW_MESSAGE],
}
